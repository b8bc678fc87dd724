//! Records: placeholder (filled in next).
