//! A `jsonb` argument seen as Postgres' own text of it.
//!
//! pgrx's `JsonB` parses the text into a `serde_json::Value`, losing the exact
//! text the contract measures sizes on. This type keeps that text (from
//! `jsonb_out`) and the datum itself, so the append path can validate the text
//! and read the fields for writing from the binary value itself.

use pgrx::datum::FromDatum;
use pgrx::{direct_function_call, impl_sql_translatable, pg_sys};
use std::ffi::CStr;

/// A `jsonb` argument: its text as `jsonb_out` writes it, and its datum.
pub struct JsonbText {
    text: String,
    datum: pg_sys::Datum,
}

impl JsonbText {
    /// Postgres' text of the value.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The `jsonb` datum itself.
    pub fn datum(&self) -> pg_sys::Datum {
        self.datum
    }
}

impl FromDatum for JsonbText {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        let detoasted = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
        let cstr = direct_function_call::<&CStr>(pg_sys::jsonb_out, &[Some(detoasted.into())])
            .expect("jsonb_out returns a string");
        // jsonb_out writes the database encoding; forgeerp requires UTF8.
        let text = String::from_utf8_lossy(cstr.to_bytes()).into_owned();
        pg_sys::pfree(cstr.as_ptr() as *mut _);
        Some(JsonbText {
            text,
            datum: pg_sys::Datum::from(detoasted),
        })
    }
}

impl_sql_translatable!(JsonbText, arg_only = "jsonb");

// SAFETY: the argument is declared `jsonb` (above), which `from_datum` reads.
unsafe impl<'fcx> pgrx::callconv::ArgAbi<'fcx> for JsonbText {
    unsafe fn unbox_arg_unchecked(arg: pgrx::callconv::Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }

    unsafe fn unbox_nullable_arg(
        arg: pgrx::callconv::Arg<'_, 'fcx>,
    ) -> pgrx::nullable::Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}
