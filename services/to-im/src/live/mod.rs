//! Real-time apply of legacy events (issue 5).
