//! admin (wip)
