//! The manifest encoding (being written).
