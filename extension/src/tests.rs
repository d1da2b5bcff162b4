//! Units that need a backend: run by `cargo pgrx test`. The SQL contract
//! itself is tested from outside, in `tests/`.

#[pgrx::pg_schema]
mod tests {
    use crate::error::{ContractError, Raise, SqlState};
    use forgeerp_contract::batch;
    use forgeerp_contract::rfc3339;
    use forgeerp_contract::uuid_text::canonical_uuid;
    use forgeerp_contract::Limits;
    use pgrx::prelude::*;
    use std::ffi::CStr;

    const LIMITS: Limits = Limits {
        max_batch_events: 10,
        max_event_bytes: 1_000_000,
    };

    #[pg_test]
    fn sqlstates_pack_like_make_sqlstate() {
        for state in SqlState::ALL {
            let text = unsafe { CStr::from_ptr(pg_sys::unpack_sql_state(state.packed())) };
            assert_eq!(text.to_str().unwrap(), state.code());
        }
    }

    #[pg_test]
    fn a_rust_panic_reaches_the_client_without_its_text() {
        let error = PgTryBuilder::new(|| -> Result<(), ContractError> {
            panic!("secret panic text at {}", "src/append.rs:42")
        })
        .catch_rust_panic(|cause| Err(ContractError::internal("forgeerp.append", cause)))
        .execute()
        .unwrap_err();
        assert_eq!(error.state, SqlState::Internal);
        assert!(!error.message.contains("secret"), "{}", error.message);
        assert!(!error.message.contains(".rs"), "{}", error.message);
        assert!(
            error.message.contains("forgeerp.append"),
            "{}",
            error.message
        );
        assert_eq!((error.detail, error.hint), (None, None));
    }

    #[pg_test]
    fn accepted_timestamps_mean_the_same_instant_to_postgres() {
        for (text, utc) in [
            ("2024-02-29T23:59:59Z", "2024-02-29 23:59:59+00"),
            ("2024-01-01t10:00:00.5+02:00", "2024-01-01 08:00:00.5+00"),
            ("1999-12-31 23:00:00-01:30", "2000-01-01 00:30:00+00"),
            ("0001-01-01T00:00:00Z", "0001-01-01 00:00:00+00"),
            ("2024-01-01T00:00:00+15:59", "2023-12-31 08:01:00+00"),
            ("2024-01-01T00:00:00-15:59", "2024-01-01 15:59:00+00"),
        ] {
            assert_eq!(rfc3339::check(text), Ok(()), "{text}");
            let same = Spi::get_one_with_args::<bool>(
                "SELECT $1::timestamptz = $2::timestamptz",
                &[text.into(), utc.into()],
            );
            assert_eq!(same, Ok(Some(true)), "{text}");
        }
    }

    #[pg_test]
    fn refused_timestamps() {
        for text in [
            "",
            "2024",
            "2024-13-01T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:60Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00 Z",
            "2024-01-01T00:00:00Zjunk",
            "２０２４-01-01T00:00:00Z",
            "2024-01-01T00:00:00+16:00",
            "2024-01-01T00:00:00-23:59",
        ] {
            assert!(rfc3339::check(text).is_err(), "{text:?} must be refused");
        }
    }

    #[pg_test]
    fn uuid_spellings_agree_with_postgres() {
        for text in [
            "6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b10",
            "6F1C1A52-8C36-4A4E-9D55-2A4A7C1F0B10",
            "{6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b10}",
            "6f1c1a528c364a4e9d552a4a7c1f0b10",
        ] {
            let ours = canonical_uuid(text).expect(text);
            let theirs = Spi::get_one_with_args::<String>("SELECT $1::uuid::text", &[text.into()]);
            assert_eq!(theirs, Ok(Some(ours)), "{text}");
        }
        for text in [
            "",
            "6f1c1a52",
            "6f1c1a52-8c36-4a4e-9d55-2a4a7c1f0b1g",
            "6f1c1a52-8c364a4e-9d55-2a4a7c1f0b10-",
            "{6f1c1a528c364a4e9d552a4a7c1f0b10",
        ] {
            assert_eq!(canonical_uuid(text), None, "{text:?}");
        }
    }

    /// The size check measures exactly what `octet_length(payload::text)` says.
    #[pg_test]
    fn sizes_are_postgres_jsonb_text_lengths() {
        let payloads = [
            r#"{}"#,
            r#"{"a": 1}"#,
            r#"{"n": 1e3, "m": 1.50, "big": 123456789012345678901234567890.000}"#,
            r#"{"s": "tab\t nl\n quote\" backslash\\ ctl\u001f é € 😀"}"#,
            r#"{"dup": 1, "dup": 2, "nested": {"x": [1, [2, {"y": null}], true, false]}}"#,
        ];
        for payload in payloads {
            let expected = Spi::get_one_with_args::<i32>(
                "SELECT octet_length($1::jsonb::text)",
                &[payload.into()],
            )
            .unwrap()
            .unwrap() as usize;
            let text = Spi::get_one_with_args::<String>(
                "SELECT jsonb_build_array(jsonb_build_object('event_type', 'A', 'payload', $1::jsonb))::text",
                &[payload.into()],
            )
            .unwrap()
            .unwrap();
            let exact = Limits {
                max_event_bytes: expected,
                ..LIMITS
            };
            assert!(
                batch::validate(&text, exact).is_ok(),
                "{payload}: {expected} bytes must fit"
            );
            let error = batch::validate(
                &text,
                Limits {
                    max_event_bytes: expected - 1,
                    ..LIMITS
                },
            )
            .unwrap_err();
            assert_eq!(error.state, SqlState::InvalidArgument);
            assert!(
                error.message.contains(&format!("take {expected} bytes")),
                "{payload}: {}",
                error.message
            );
        }
    }
}
