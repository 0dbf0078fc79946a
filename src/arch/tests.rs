//! Unit tests of the switch contract (filled in by the arch test suite).
