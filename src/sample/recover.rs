//! Finding a frame's caller where no unwind information describes the frame: hand-written
//! assembly (zstd's Huffman decoder, OpenSSL's ciphers, libjpeg-turbo's SIMD), code built
//! without unwind tables. As crash-report stack walkers do, two ways are tried in order:
//!
//! 1. the frame-pointer chain, where it validates: `rbp` points into the copied stack
//!    above `rsp`, the saved `rbp` it points at is higher still (or zero, the outermost
//!    frame), and the word after it is a return address;
//! 2. a scan of the copied stack upward from `rsp` for the first word that is a return
//!    address: a value that points into an executable mapping just after a call
//!    instruction.
//!
//! A frame found either way is a guess that validated, not a fact the program stated;
//! callers count such frames apart from the exact ones.

/// How many words above the stack pointer a scan reads, at most (2 KiB).
pub(crate) const SCAN_WORDS: u64 = 256;

/// How a recovered caller was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// From the frame-pointer chain.
    FramePointer,
    /// From a return address found on the stack.
    Scan,
}

/// The frame a recovery found: the return address, and the caller's stack and frame
/// pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// The caller's return address into it.
    pub return_address: u64,
    /// The caller's stack pointer (just above the return address).
    pub sp: u64,
    /// The caller's frame pointer (unchanged by a scan, which cannot know it).
    pub bp: u64,
    /// How it was found.
    pub how: Recovery,
}

/// True when the bytes `before` (the code just before a return address, ending where it
/// points) end with a call instruction: `call rel32` (`E8`), or an indirect near call
/// (`FF /2`, through a register or memory, with any ModRM, SIB and displacement form, and
/// any prefix before it).
pub(crate) fn ends_with_call(before: &[u8]) -> bool {
    let n = before.len();
    if n >= 5 && before[n - 5] == 0xE8 {
        return true;
    }
    (2..=7).any(|len| {
        n >= len && before[n - len] == 0xFF && {
            let modrm = before[n - len + 1];
            modrm >> 3 & 7 == 2 && indirect_call_len(modrm, before.get(n - len + 2)) == Some(len)
        }
    })
}

/// The length of `FF /2` with this ModRM byte (and the SIB byte after it, when present).
fn indirect_call_len(modrm: u8, sib: Option<&u8>) -> Option<usize> {
    let (mode, rm) = (modrm >> 6, modrm & 7);
    let sib_base_disp32 = || sib.map(|s| s & 7 == 5);
    Some(match (mode, rm) {
        (3, _) => 2,
        (0, 5) => 6, // rip-relative disp32
        (0, 4) => {
            if sib_base_disp32()? {
                7
            } else {
                3
            }
        }
        (0, _) => 2,
        (1, 4) => 4,
        (1, _) => 3,
        (2, 4) => 7,
        (2, _) => 6,
        _ => return None,
    })
}

/// Recovers the caller of a frame whose stack pointer is `sp` and frame pointer `bp`.
/// `word` reads 8 bytes of the copied stack (None outside it); `is_return_address` tells
/// a code address just after a call.
pub(crate) fn recover(
    sp: u64,
    bp: u64,
    word: impl Fn(u64) -> Option<u64>,
    is_return_address: impl Fn(u64) -> bool,
) -> Option<Recovered> {
    if bp > sp && bp % 8 == 0 {
        if let (Some(saved), Some(ra)) = (word(bp), bp.checked_add(8).and_then(&word)) {
            if (saved == 0 || saved > bp) && is_return_address(ra) {
                return Some(Recovered {
                    return_address: ra,
                    sp: bp + 16,
                    bp: saved,
                    how: Recovery::FramePointer,
                });
            }
        }
    }
    let (slot, return_address) = (0..SCAN_WORDS).find_map(|i| {
        let slot = sp.checked_add(8 * i)?;
        let value = word(slot)?;
        is_return_address(value).then_some((slot, value))
    })?;
    // The caller's frame pointer: rbp, unless the code used it for data, in which case it
    // saved the caller's between `sp` and the return address (pushed first, so the nearest
    // one that validates). A frame pointer that does not validate is unknown (zero), so that
    // unwind information reading it fails rather than follows data.
    let frame_pointer = |v: u64| {
        v > slot && v % 8 == 0 && v.checked_add(8).and_then(&word).is_some_and(&is_return_address)
    };
    let bp = if frame_pointer(bp) {
        bp
    } else {
        let below = (slot - sp) / 8;
        (1..=below).filter_map(|i| word(slot - 8 * i)).find(|&v| frame_pointer(v)).unwrap_or(0)
    };
    Some(Recovered { return_address, sp: slot + 8, bp, how: Recovery::Scan })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_instructions_are_told_from_other_code() {
        // call rel32
        assert!(ends_with_call(&[0x90, 0xE8, 1, 2, 3, 4]));
        // call rax; call r11 (REX.B 41 FF D3); call [rax]; call [rip+disp32];
        // call [rbx+disp8]; call [rsp+disp8] (SIB); call [rax*8+disp32] (SIB, no base);
        // call [rbp+disp32]
        assert!(ends_with_call(&[0xFF, 0xD0]));
        assert!(ends_with_call(&[0x41, 0xFF, 0xD3]));
        assert!(ends_with_call(&[0xFF, 0x10]));
        assert!(ends_with_call(&[0xFF, 0x15, 1, 2, 3, 4]));
        assert!(ends_with_call(&[0xFF, 0x53, 0x08]));
        assert!(ends_with_call(&[0xFF, 0x54, 0x24, 0x08]));
        assert!(ends_with_call(&[0xFF, 0x14, 0xC5, 1, 2, 3, 4]));
        assert!(ends_with_call(&[0xFF, 0x95, 1, 2, 3, 4]));
        // Not calls: ret; jmp rax (FF /4); push [rax] (FF /6); a call ModRM whose length
        // does not end here; nops; too few bytes.
        assert!(!ends_with_call(&[0x90, 0xC3]));
        assert!(!ends_with_call(&[0xFF, 0xE0]));
        assert!(!ends_with_call(&[0xFF, 0x30]));
        assert!(!ends_with_call(&[0xFF, 0x15, 1, 2]));
        assert!(!ends_with_call(&[0x90; 8]));
        assert!(!ends_with_call(&[0xE8]));
    }

    /// A stack copy at 0x1000: `words` from there up.
    fn stack(words: &[u64]) -> impl Fn(u64) -> Option<u64> + '_ {
        move |addr| {
            let i = addr.checked_sub(0x1000)? / 8;
            (addr % 8 == 0).then_some(())?;
            words.get(usize::try_from(i).ok()?).copied()
        }
    }

    const CODE: std::ops::Range<u64> = 0x40_0000..0x50_0000;

    #[test]
    fn a_valid_frame_pointer_chain_is_followed() {
        // 0x1000: locals; 0x1010: saved rbp (0x1040), 0x1018: return address.
        let words = [7, 0x40_1234, 0x1040, 0x40_5678, 0, 0, 0, 0, 0];
        let r = recover(0x1000, 0x1010, stack(&words), |a| CODE.contains(&a)).unwrap();
        assert_eq!(
            r,
            Recovered {
                return_address: 0x40_5678,
                sp: 0x1020,
                bp: 0x1040,
                how: Recovery::FramePointer
            }
        );
    }

    #[test]
    fn a_clobbered_frame_pointer_falls_back_to_the_first_return_address_above_sp() {
        // rbp holds data (as in zstd's decoder loop); the scan skips the saved registers
        // and takes the return address, not the older one above it. No saved frame pointer
        // validates: the caller's is unknown.
        let words = [3, 0x7fff_0000, 0x40_0100, 0x40_0200];
        for bp in [0xdead_beef, 0x0800, 0] {
            let r = recover(0x1000, bp, stack(&words), |a| CODE.contains(&a)).unwrap();
            assert_eq!(
                r,
                Recovered { return_address: 0x40_0100, sp: 0x1018, bp: 0, how: Recovery::Scan },
                "bp {bp:#x}"
            );
        }
        // The caller's frame pointer saved below the return address (pushed by the code
        // that then used rbp for data), pointing at a frame that validates, comes back.
        let words = [0x1030, 5, 0x40_0100, 0, 0, 0, 0x1050, 0x40_0300];
        let r = recover(0x1000, 0xdead_beef, stack(&words), |a| CODE.contains(&a)).unwrap();
        assert_eq!(
            r,
            Recovered { return_address: 0x40_0100, sp: 0x1018, bp: 0x1030, how: Recovery::Scan }
        );
        // Nothing that validates: no caller.
        assert_eq!(recover(0x1000, 0, stack(&[1, 2, 3]), |a| CODE.contains(&a)), None);
    }
}
