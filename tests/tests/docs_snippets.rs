//! The docs' paste test: every ```sql block of the README and of `docs/`
//! runs as pasted, as a superuser, in a fresh database of its own (with the
//! extension installed first unless the block installs it). Roles a block
//! creates are dropped before (a left-over of an interrupted run) and after.

use forgeerp_test_fixtures::{conninfo, database_name, fresh_database_blocking, Install};
use postgres::{Client, NoTls};

/// The documents whose SQL a newcomer pastes.
const DOCUMENTS: [&str; 4] = [
    "README.md",
    "docs/API.md",
    "docs/releases.md",
    "docs/security.md",
];

/// Every ```sql block of `text`, with the line it starts on.
fn sql_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start() == "```sql" => current = Some((number + 1, String::new())),
            Some(_) if line.trim_start() == "```" => blocks.push(current.take().unwrap()),
            Some((_, block)) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// The roles a block makes (`CREATE ROLE name`).
fn roles_made(block: &str) -> Vec<String> {
    block
        .split("CREATE ROLE ")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

fn drop_roles(admin: &mut Client, roles: &[String]) {
    for role in roles {
        admin
            .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
            .unwrap_or_else(|e| panic!("drop role {role}: {e}"));
    }
}

#[test]
fn every_sql_snippet_of_the_docs_runs_as_pasted() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut ran = 0;
    for document in DOCUMENTS {
        let text = std::fs::read_to_string(format!("{root}/{document}")).unwrap();
        for (line, block) in sql_blocks(&text) {
            let name = database_name("forgeerp_test", &format!("_doc{ran}"));
            let install = if block.contains("CREATE EXTENSION forgeerp") {
                Install::Nothing
            } else {
                Install::Current
            };
            fresh_database_blocking(&name, install);
            let mut admin = Client::connect(&conninfo("postgres"), NoTls).unwrap();
            let roles = roles_made(&block);
            drop_roles(&mut admin, &roles);
            let mut db = Client::connect(&conninfo(&name), NoTls).unwrap();
            let result = db.batch_execute(&block);
            drop(db);
            admin
                .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .unwrap();
            drop_roles(&mut admin, &roles);
            if let Err(error) = result {
                let detail = error.as_db_error().map(|e| e.message().to_string());
                panic!(
                    "{document}, the sql block at line {line} fails: {error} {detail:?}\n{block}"
                );
            }
            ran += 1;
        }
    }
    // The README's tour, its upgrade step, API.md's example, releases.md's upgrade.
    assert!(ran >= 4, "only {ran} sql blocks found");
}

#[test]
fn the_snippet_reader_finds_blocks_and_roles() {
    let text = "x\n```sql\nCREATE ROLE a_1 LOGIN;\nSELECT 1;\n```\n```sh\nls\n```\n```sql\nSELECT 2;\n```\n";
    let blocks = sql_blocks(text);
    assert_eq!(blocks.len(), 2);
    assert_eq!(
        blocks[0],
        (2, "CREATE ROLE a_1 LOGIN;\nSELECT 1;\n".to_string())
    );
    assert_eq!(roles_made(&blocks[0].1), vec!["a_1".to_string()]);
    assert!(roles_made(&blocks[1].1).is_empty());
}
