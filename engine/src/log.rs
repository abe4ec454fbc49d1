//! Messages the engine hands to the glue for httpd's error log.

/// httpd log levels the engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Emerg,
    Alert,
    Crit,
    Error,
    Warn,
    Notice,
    Info,
    Debug,
    Trace1,
    Trace2,
}

/// One log message, with its AH code when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub level: Level,
    pub msg: String,
}

impl Note {
    pub fn new(level: Level, msg: impl Into<String>) -> Note {
        Note {
            level,
            msg: msg.into(),
        }
    }
}
