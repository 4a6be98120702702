//! PNG rendering of the entropy plot (pending).
