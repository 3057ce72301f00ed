//! The admin console: its JSON routes (grants, the audit log, the dead-letter log) and its
//! pages in a real browser.

mod pages;
mod routes;
