//! Bloom filter (being written).
