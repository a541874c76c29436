//! Unit tests of the status diff.
