//! `mixsum N [DESCRIPTIONS]`: N items mixed one call each (N crossings into `mix`), then
//! all at once (one into `mix_all`), and DESCRIPTIONS strings from C (default 10), each
//! freed by C's `free` after Rust copied it. Prints the sums and the last description.

fn main() {
    let mut args = std::env::args().skip(1);
    let mut number = |default: u64| -> u64 {
        args.next().map_or(default, |a| {
            a.parse().unwrap_or_else(|_| {
                eprintln!("usage: mixsum [ITEMS] [DESCRIPTIONS]: whole numbers, not `{a}`");
                std::process::exit(2)
            })
        })
    };
    let (n, descriptions) = (number(1_000_000), number(10));
    let xs: Vec<u64> = (0..n).collect();
    let each = mixsum::mix_each(&xs);
    let all = mixsum::mix_all(&xs);
    assert_eq!(each, all, "the per-item sum and the batched one differ");
    let mut last = String::new();
    for i in 0..descriptions {
        last = mixsum::describe(i);
    }
    println!("{each:016x} {all:016x} {last}");
}
