//! The manifest file (being written).
