//! Messages the engine hands to the glue for httpd's error log.

/// httpd log levels the engine uses, with httpd's numbers (`APLOG_*`, the
/// syslog levels and the trace levels after them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Emerg = 0,
    Alert = 1,
    Crit = 2,
    Error = 3,
    Warn = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
    Trace1 = 8,
    Trace2 = 9,
}

/// One log message, with its AH code when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub level: Level,
    pub msg: String,
    /// Already written by this thread's sink when it was made: the glue
    /// does not write it again.
    pub emitted: bool,
}

type Sink = Box<dyn Fn(Level, &str)>;

thread_local! {
    static SINK: std::cell::RefCell<Option<Sink>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `sink` receiving every note made on this thread as it is
/// made: a renewal that takes minutes shows its steps in the error log as
/// they happen, each with its own time, not when the job ends.
pub(crate) fn with_sink<R>(sink: impl Fn(Level, &str) + 'static, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Sink>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            SINK.with(|s| *s.borrow_mut() = prev);
        }
    }
    let prev = SINK.with(|s| s.borrow_mut().replace(Box::new(sink)));
    let _restore = Restore(prev);
    f()
}

impl Note {
    pub fn new(level: Level, msg: impl Into<String>) -> Note {
        let msg = msg.into();
        let emitted = SINK.with(|s| match s.try_borrow().as_deref() {
            Ok(Some(sink)) => {
                sink(level, &msg);
                true
            }
            _ => false,
        });
        Note {
            level,
            msg,
            emitted,
        }
    }
}

/// Where what the engine has to say goes: the one sink every function that
/// reports takes (`&mut dyn Notes`). A `Vec<Note>` collects them for the
/// glue, which writes them to httpd's log; a thread's log sink
/// ([`with_sink`]) sees each note as it is made as well.
pub trait Notes {
    /// Hands one note on.
    fn push(&mut self, note: Note);

    /// Says `msg` at `level`.
    fn say(&mut self, level: Level, msg: String) {
        self.push(Note::new(level, msg));
    }

    /// Hands on every note of `more`.
    fn extend_from(&mut self, more: Vec<Note>) {
        for n in more {
            self.push(n);
        }
    }
}

impl Notes for Vec<Note> {
    fn push(&mut self, note: Note) {
        Vec::push(self, note);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_sees_notes_as_they_are_made() {
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let s2 = seen.clone();
        let n = with_sink(
            move |l, m| s2.borrow_mut().push((l, m.to_string())),
            || {
                let a = Note::new(Level::Info, "one");
                assert_eq!(seen.borrow().len(), 1);
                a
            },
        );
        assert!(n.emitted);
        assert_eq!(seen.borrow()[0], (Level::Info, "one".to_string()));
        // outside: no sink, the glue writes it later
        assert!(!Note::new(Level::Info, "two").emitted);
        assert_eq!(seen.borrow().len(), 1);
    }
}
