//! Where a long command is, on a terminal: one spinner line on stderr saying the stage (the
//! build, the program running and for how long, the post-processing) and the time spent in
//! it. Commands report stages through [`stage`]; nothing is drawn unless the command line
//! turned it on ([`enable`]) and stderr is a terminal, so a library user, a pipe or a file
//! sees none of it.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

fn bar() -> std::sync::MutexGuard<'static, Option<indicatif::ProgressBar>> {
    BAR.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Turns the spinner on, where stderr is a terminal; returns whether it is.
pub fn enable() -> bool {
    if !std::io::stderr().is_terminal() {
        return false;
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .expect("a valid template"),
    );
    *bar() = Some(spinner);
    true
}

/// Enters stage `what` (`replaying the heap log`): said, and timed from now.
pub fn stage(what: impl Into<String>) {
    ticking(what.into(), Duration::from_millis(250));
}

/// Enters the stage in which the program runs (`running ./prog under memcheck`): redrawn
/// once a second, as the program's own output goes to the same terminal.
pub fn running(what: impl Into<String>) {
    ticking(what.into(), Duration::from_secs(1));
}

fn ticking(what: String, every: Duration) {
    if let Some(spinner) = bar().as_ref() {
        spinner.reset_elapsed();
        spinner.set_message(what);
        spinner.enable_steady_tick(every);
    }
}

/// Clears the spinner (before the command prints its result).
pub fn finish() {
    if let Some(spinner) = bar().take() {
        spinner.finish_and_clear();
    }
}

/// Prints a line above the spinner (or plainly, without one).
pub fn say(line: &str) {
    match bar().as_ref() {
        Some(spinner) => spinner.println(line),
        None => eprintln!("{line}"),
    }
}
