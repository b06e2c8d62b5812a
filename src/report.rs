//! How library code tells the user what is happening without printing: a small reporter trait,
//! implemented at the command layer (stderr) and by tests.

pub trait Reporter: Send + Sync {
    /// A step of progress: `("Installing", "hello 1.2.0")`.
    fn status(&self, action: &str, message: &str);
    /// Something the user should know that did not stop the command.
    fn warn(&self, message: &str);
}

/// Reports nothing.
pub struct Silent;

impl Reporter for Silent {
    fn status(&self, _: &str, _: &str) {}
    fn warn(&self, _: &str) {}
}
