//! approval-callback: the Function URL behind the approval emails' links.
//!
//! `GET ?link=…` shows a confirmation page and changes nothing (so email scanners that pre-fetch
//! links decide nothing); `POST` from that page's form, with its anti-forgery value and cookie,
//! records the decision with PutApprovalResult. See [`handler`].

pub mod config;
pub mod function_url;
pub mod handler;
pub mod page;
