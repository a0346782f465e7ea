//! approval-callback (in progress).
