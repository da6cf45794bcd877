//! The end-to-end scenarios, one module per scenario (test names read `<scenario>::<test>`), in one test
//! binary: the parts run as real processes of the built binary (`IMBRIDGE_BIN`) or as in-process servers,
//! against the real broker, with the emulators serving real HTTP. What they share is the sandbox library
//! (`tests/src/`). Every test first takes its scenario's [`imbridge_e2e::turn`]: tests of one scenario may run
//! side by side, scenarios never do.

mod im_to_im_export;
mod import_e2e;
mod import_resume;
mod import_verify_fails;
mod ops_cli;
mod ops_console;
mod ops_demo_check;
mod ops_observe;
mod ops_replay;
mod ops_scale;
mod reconcile_fault_suite;
mod reconcile_group_state;
mod reconcile_ingest_kills;
mod reconcile_repair;
mod sync_callback_faults;
mod sync_callback_outage;
mod sync_convergence;
mod sync_event_ids;
mod sync_failures;
mod sync_history_first;
mod sync_im_to_im;
mod sync_no_duplicates;
mod sync_order_echo;
