//! Owner's rights against a hostile application role (see `tests/src/attack.rs`).

use forgeerp_server_tests::attack::Attacker;
use forgeerp_server_tests::database;

#[test]
fn no_security_definer_function_runs_an_application_roles_pg_temp_types() {
    let attacker = Attacker::new(database());
    let outcome = attacker.shadow_types_and_call_every_definer();
    for f in [
        "forgeerp.append(uuid,text,uuid,bigint,jsonb)",
        "forgeerp.load_stream(uuid,uuid,bigint,integer)",
        "forgeerp.read_all(bigint,bigint,integer,uuid)",
        "forgeerp.stream_version(uuid,uuid)",
    ] {
        assert!(
            outcome.called.iter().any(|c| c == f),
            "{f} is SECURITY DEFINER and was called: {:?}",
            outcome.called
        );
    }
    assert!(
        outcome.hits.is_empty(),
        "the attacker's pg_temp domain ran with another role's rights: {:?}",
        outcome.hits
    );
    assert!(!attacker.is_superuser(), "the attacker became superuser");
}
