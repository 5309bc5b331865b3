//! memcheck's XML (protocol 4, valgrind's `docs/internals/xml-output-protocol4.txt`) read
//! as the ordered stream it is: an error's first `<stack>` is where it happened, and each
//! later stack is what the `<auxwhat>` before it says (the block's free, or its
//! allocation). Nothing but the elements ffiprof uses is kept.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use quick_xml::events::Event;

use crate::error::{Error, Result};

/// One frame of a stack, as memcheck gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Its code address in the process (for frames past the first, the return address
    /// minus one).
    pub(crate) ip: u64,
    /// The object the address lies in.
    pub(crate) obj: Option<String>,
    /// The function (demangled; an inlined one's bare debug-information name).
    pub(crate) function: Option<String>,
    /// The source file, its directory joined to it.
    pub(crate) file: Option<String>,
    pub(crate) line: Option<u32>,
}

/// One stack, with the `<auxwhat>` said just before it (none for the first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stack {
    pub(crate) said: Option<String>,
    /// Innermost first.
    pub(crate) frames: Vec<Frame>,
}

/// One error as memcheck reports it, the first time it sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reported {
    pub(crate) unique: u64,
    /// `InvalidRead`, `InvalidWrite`, `InvalidFree`, `MismatchedFree`, `UninitValue`...
    pub(crate) kind: String,
    /// Its one line (`Invalid read of size 8`).
    pub(crate) what: String,
    /// Its stacks in order: where it happened first, then each `<auxwhat>`'s.
    pub(crate) stacks: Vec<Stack>,
    /// The `<auxwhat>` lines, in order (also those no stack follows).
    pub(crate) auxwhat: Vec<String>,
}

/// What one memcheck file holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct File {
    pub(crate) pid: u64,
    /// The program and its arguments as memcheck ran them.
    pub(crate) command: Vec<String>,
    pub(crate) errors: Vec<Reported>,
    /// How many times each error (by `unique`) occurred; empty where the file ends before
    /// memcheck wrote its counts (the process was killed).
    pub(crate) counts: HashMap<u64, u64>,
    /// The file ended before `</valgrindoutput>`.
    pub(crate) cut: bool,
    /// The signal that ended the process, where one did (`<fatal_signal>`).
    pub(crate) fatal_signal: Option<String>,
    /// What valgrind's own code said to the user (`<clientmsg>`), in order.
    pub(crate) messages: Vec<String>,
}

impl File {
    /// How many times `e` occurred (1 where the counts are missing).
    pub(crate) fn count(&self, e: &Reported) -> u64 {
        self.counts.get(&e.unique).copied().unwrap_or(1)
    }
}

fn number(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// Reads memcheck's XML file at `path`. A file that is not memcheck's XML is the user's
/// to fix.
pub(crate) fn read(path: &Path) -> Result<File> {
    let opened = std::fs::File::open(path)
        .map_err(|source| Error::InputUnreadable { path: path.to_owned(), source })?;
    parse(std::io::BufReader::new(opened))
        .map_err(|reason| Error::NotMemcheck { path: path.to_owned(), reason })
}

/// Parses memcheck's XML from `input`; the error says why it is not.
pub(crate) fn parse(input: impl BufRead) -> std::result::Result<File, String> {
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut file = File { cut: true, ..File::default() };
    let mut seen_root = false;
    let mut error: Option<Reported> = None;
    let mut stack: Option<Stack> = None;
    let mut frame: Option<Frame> = None;
    let mut pending_said: Option<String> = None;
    let (mut dir, mut source) = (None::<String>, None::<String>);
    let mut pair: (Option<u64>, Option<u64>) = (None, None);
    loop {
        let event = match reader.read_event_into(&mut buf) {
            Ok(e) => e,
            // A file cut short (the process killed while memcheck wrote it) ends here.
            Err(_) if seen_root => break,
            Err(e) => return Err(e.to_string()),
        };
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if path.is_empty() && name != "valgrindoutput" {
                    return Err(format!("its root element is <{name}>, not <valgrindoutput>"));
                }
                seen_root = true;
                match name.as_str() {
                    "error" if path.len() == 1 => error = Some(Reported::default()),
                    "stack" if error.is_some() => {
                        stack = Some(Stack { said: pending_said.take(), frames: Vec::new() })
                    }
                    "frame" if stack.is_some() => {
                        frame = Some(Frame::default());
                        (dir, source) = (None, None);
                    }
                    "pair" => pair = (None, None),
                    _ => {}
                }
                path.push(name);
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::CData(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else {
                    let name = r.decode().map_err(|e| e.to_string())?;
                    text.push_str(match name.as_ref() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => "",
                    });
                }
            }
            Event::End(_) => {
                let Some(name) = path.pop() else { return Err("an unbalanced end tag".into()) };
                let parent = path.last().map(String::as_str).unwrap_or("");
                let value = std::mem::take(&mut text);
                match (parent, name.as_str()) {
                    ("frame", field) => {
                        if let Some(f) = frame.as_mut() {
                            match field {
                                "ip" => f.ip = number(&value).unwrap_or(0),
                                "obj" => f.obj = Some(value),
                                "fn" => f.function = Some(value),
                                "dir" => dir = Some(value),
                                "file" => source = Some(value),
                                "line" => f.line = value.trim().parse().ok(),
                                _ => {}
                            }
                        }
                    }
                    ("stack", "frame") => {
                        if let (Some(s), Some(mut f)) = (stack.as_mut(), frame.take()) {
                            f.file = match (dir.take(), source.take()) {
                                (Some(d), Some(s)) if !s.starts_with('/') => {
                                    Some(format!("{}/{s}", d.trim_end_matches('/')))
                                }
                                (_, s) => s,
                            };
                            s.frames.push(f);
                        }
                    }
                    ("error", "stack") => {
                        if let (Some(e), Some(s)) = (error.as_mut(), stack.take()) {
                            e.stacks.push(s);
                        }
                    }
                    ("error", field) => {
                        if let Some(e) = error.as_mut() {
                            match field {
                                "unique" => e.unique = number(&value).unwrap_or(0),
                                "kind" => e.kind = value.trim().to_owned(),
                                "what" => e.what = value.trim().to_owned(),
                                "auxwhat" => {
                                    e.auxwhat.push(value.trim().to_owned());
                                    pending_said = Some(value.trim().to_owned());
                                }
                                _ => {}
                            }
                        }
                    }
                    // A leak's or a client's text, inside <xwhat>.
                    ("xwhat", "text") => {
                        if let Some(e) = error.as_mut().filter(|e| e.what.is_empty()) {
                            e.what = value.trim().to_owned();
                        }
                    }
                    ("valgrindoutput", "error") => {
                        if let Some(e) = error.take() {
                            file.errors.push(e);
                        }
                        pending_said = None;
                    }
                    ("valgrindoutput", "pid") => file.pid = number(&value).unwrap_or(0),
                    ("argv", "exe") => file.command.insert(0, value.trim().to_owned()),
                    ("argv", "arg") => file.command.push(value.trim().to_owned()),
                    ("clientmsg", "text") => file.messages.push(value.trim().to_owned()),
                    ("fatal_signal", "signame") => file.fatal_signal = Some(value.trim().into()),
                    ("pair", "count") => pair.0 = number(&value),
                    ("pair", "unique") => pair.1 = number(&value),
                    ("errorcounts", "pair") => {
                        if let (Some(count), Some(unique)) = pair {
                            file.counts.insert(unique, count);
                        }
                    }
                    ("", "valgrindoutput") => file.cut = false,
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !seen_root {
        return Err("it holds no <valgrindoutput>".into());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0"?>
<valgrindoutput>
<protocolversion>4</protocolversion>
<pid>4242</pid>
<args><argv><exe>/bin/prog</exe><arg>--n</arg><arg>3</arg></argv></args>
<error>
  <unique>0x0</unique>
  <tid>1</tid>
  <kind>InvalidRead</kind>
  <what>Invalid read of size 8</what>
  <stack>
    <frame><ip>0x11C797</ip><obj>/bin/prog</obj><fn>c_read_held</fn><dir>/src</dir><file>life.c</file><line>7</line></frame>
    <frame><ip>0x11C3E2</ip><obj>/bin/prog</obj><fn>call_once&lt;fn(), ()&gt;</fn><dir>/rustc/abc</dir><file>library/core/src/ops/function.rs</file><line>250</line></frame>
  </stack>
  <auxwhat>Address 0x4a5fce0 is 0 bytes inside a block of size 64 free'd</auxwhat>
  <stack>
    <frame><ip>0x484417B</ip><obj>/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so</obj><fn>free</fn></frame>
  </stack>
  <auxwhat>Block was alloc'd at</auxwhat>
  <stack>
    <frame><ip>0x48417A8</ip><obj>/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so</obj><fn>malloc</fn></frame>
  </stack>
</error>
<errorcounts>
  <pair><count>7</count><unique>0x0</unique></pair>
</errorcounts>
</valgrindoutput>
"#;

    #[test]
    fn an_errors_stacks_are_read_in_order_with_what_was_said_before_each() {
        let f = parse(XML.as_bytes()).unwrap();
        assert_eq!((f.pid, f.cut), (4242, false));
        assert_eq!(f.command, ["/bin/prog", "--n", "3"]);
        let e = &f.errors[0];
        assert_eq!((e.kind.as_str(), e.what.as_str()), ("InvalidRead", "Invalid read of size 8"));
        assert_eq!(e.stacks.len(), 3);
        assert_eq!(e.stacks[0].said, None);
        assert_eq!(e.stacks[0].frames[0].file.as_deref(), Some("/src/life.c"));
        assert_eq!(e.stacks[0].frames[1].function.as_deref(), Some("call_once<fn(), ()>"));
        assert_eq!(e.stacks[0].frames[1].ip, 0x11C3E2);
        assert!(e.stacks[1].said.as_deref().unwrap().ends_with("free'd"));
        assert_eq!(e.stacks[1].frames[0].function.as_deref(), Some("free"));
        assert_eq!(e.stacks[2].said.as_deref(), Some("Block was alloc'd at"));
        assert_eq!(f.count(e), 7);
    }

    #[test]
    fn a_file_cut_short_keeps_what_it_holds_and_says_so() {
        let cut = &XML[..XML.find("<errorcounts>").unwrap()];
        let f = parse(cut.as_bytes()).unwrap();
        assert!(f.cut);
        assert_eq!(f.errors.len(), 1);
        assert_eq!(f.count(&f.errors[0]), 1);
    }

    #[test]
    fn other_files_are_refused() {
        assert!(parse("<html><body/></html>".as_bytes()).unwrap_err().contains("<html>"));
        assert!(parse("not xml at all".as_bytes()).is_err());
    }
}
