//! Reporters: turn engine events into progress bars, plain lines or JSON.
