//! The identities of processes and threads, as the kernel numbers them: two types, so
//! that a thread id is never taken for a process id (the main thread's ids are equal, the
//! others' are not).

use serde::{Deserialize, Serialize};

/// A process id (the kernel's tgid).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Pid(pub u32);

/// A thread id (the kernel's pid of a task; the main thread's equals its process's).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Tid(pub u32);

impl Pid {
    /// The process's main thread.
    pub fn main_thread(self) -> Tid {
        Tid(self.0)
    }
}

impl std::fmt::Display for Pid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for Tid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_and_write_as_the_kernels_numbers() {
        assert_eq!(serde_json::to_string(&Pid(42)).unwrap(), "42");
        assert_eq!(serde_json::from_str::<Tid>("7").unwrap(), Tid(7));
        assert_eq!(Pid(42).main_thread(), Tid(42));
        assert_eq!(format!("{} {}", Pid(1), Tid(2)), "1 2");
    }
}
