//! Placeholder: filled by the protocol work of issue 2.
