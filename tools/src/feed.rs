//! feed (wip)
