//! The SQL sinks: PostgreSQL (batched rows and device events) and MySQL/MariaDB
//! (through an outage), each into a table of the test's own.

use reqwest::Method;
use serde_json::json;

use crate::common::unique;
use crate::support::{eventually, Node, Outage, Relay};

fn postgres_url() -> String {
    std::env::var("SKYPORT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        + "/test"
}

const MYSQL: &str = "127.0.0.1:3306";

fn mysql_url() -> String {
    std::env::var("SKYPORT_TEST_MYSQL").unwrap_or_else(|_| format!("mysql://root@{MYSQL}"))
        + "/test"
}

/// A table of its own in the `test` database of `DB`, dropped afterwards.
struct Table<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    name: String,
}

impl<DB: sqlx::Database> Table<DB>
where
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    async fn create(url: &str, columns: &str) -> Self {
        let pool = sqlx::Pool::<DB>::connect(url)
            .await
            .unwrap_or_else(|e| panic!("{url} is needed by this test: {e}"));
        let name = unique("rules_sink").replace('-', "_");
        sqlx::raw_sql(&format!("CREATE TABLE {name} ({columns})"))
            .execute(&pool)
            .await
            .unwrap();
        Self { pool, name }
    }

    async fn count(&self) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {}", self.name))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn drop_table(self) {
        sqlx::raw_sql(&format!("DROP TABLE {}", self.name))
            .execute(&self.pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn postgres_gets_batched_rows_and_device_events() {
    let url = postgres_url();
    let messages = Table::<sqlx::Postgres>::create(
        &url,
        "n integer PRIMARY KEY, clientid text, topic text, note text",
    )
    .await;
    let events =
        Table::<sqlx::Postgres>::create(&url, "clientid text, event text, at bigint").await;
    let node = Node::start("pg").await;
    let resource = node
        .create(
            "/api/v4/resources",
            json!({"type": "backend_pgsql", "config": {
                "server": "127.0.0.1:5432", "database": "test", "user": "postgres", "password": "not-shown"
            }}),
        )
        .await;
    assert_eq!(resource["config"]["password"], "******", "{resource}");
    let prefix = &node.prefix;
    let rows = node
        .rule(
            &format!("SELECT payload.n AS n, clientid, topic, 'it''s' AS note FROM \"{prefix}/#\""),
            "data_to_pgsql",
            json!({
                "$resource": resource["id"],
                "sql": format!("INSERT INTO {}(n, clientid, topic, note) VALUES (${{n}}, ${{clientid}}, ${{topic}}, ${{note}})", messages.name),
                "batch_size": 50
            }),
        )
        .await;
    let device = unique("pg-dev");
    node.rule(
        &format!("SELECT clientid, event, timestamp FROM \"$events/client_connected\", \"$events/client_disconnected\" WHERE clientid = '{device}'"),
        "data_to_pgsql",
        json!({
            "$resource": resource["id"],
            "sql": format!("INSERT INTO {}(clientid, event, at) VALUES (${{clientid}}, ${{event}}, ${{timestamp}})", events.name)
        }),
    )
    .await;

    node.publish_numbers("m", &device, 0, 200).await;
    eventually("200 rows", || async {
        (messages.count().await >= 200).then_some(())
    })
    .await;
    let (distinct, note): (i64, String) = sqlx::query_as(&format!(
        "SELECT count(DISTINCT n), min(note) FROM {} WHERE clientid = $1 AND topic = $2",
        messages.name
    ))
    .bind(&device)
    .bind(format!("{prefix}/m"))
    .fetch_one(&messages.pool)
    .await
    .unwrap();
    assert_eq!((distinct, note.as_str()), (200, "it's"));
    assert_eq!(messages.count().await, 200, "exactly once per message");
    let r = node.rule_view(&rows).await;
    assert_eq!(r["metrics"][0]["matched"], 200, "{r}");
    assert_eq!(r["actions"][0]["metrics"][0]["success"], 200, "{r}");

    eventually("connect and disconnect rows", || async {
        (events.count().await >= 2).then_some(())
    })
    .await;
    let kinds: Vec<(String,)> = sqlx::query_as(&format!(
        "SELECT event FROM {} WHERE clientid = $1 ORDER BY at",
        events.name
    ))
    .bind(&device)
    .fetch_all(&events.pool)
    .await
    .unwrap();
    let kinds: Vec<&str> = kinds.iter().map(|(k,)| k.as_str()).collect();
    assert_eq!(kinds, ["client.connected", "client.disconnected"]);

    // A resource in use cannot go.
    let (status, e) = node
        .api(
            Method::DELETE,
            &format!("/api/v4/resources/{}", resource["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!((status, e["code"].clone()), (409, json!(108)), "{e}");
    messages.drop_table().await;
    events.drop_table().await;
}

#[tokio::test]
async fn mysql_gets_rendered_rows_in_order_through_an_outage() {
    let table = Table::<sqlx::MySql>::create(
        &mysql_url(),
        "id bigint AUTO_INCREMENT PRIMARY KEY, n int, who varchar(64), note varchar(64)",
    )
    .await;
    let mut relay = Relay::start(MYSQL).await;
    let mut node = Node::start("my").await;
    let resource = node
        .create(
            "/api/v4/resources",
            json!({"type": "backend_mysql", "config": {
                "server": relay.addr.to_string(), "database": "test", "user": "root", "password": ""
            }}),
        )
        .await;
    assert_eq!(resource["config"]["password"], "******", "{resource}");
    // A backslash in the client id and a quote in a constant: both arrive as they are.
    let rule = node
        .rule(
            &format!(
                "SELECT payload.n AS n, upper(clientid) AS who, 'it''s' AS note FROM \"{}/#\" WHERE payload.n >= 0",
                node.prefix
            ),
            "data_to_mysql",
            json!({
                "$resource": resource["id"],
                "sql": format!("INSERT INTO {}(n, who, note) VALUES (${{n}}, ${{who}}, ${{note}})", table.name),
                "batch_size": 7
            }),
        )
        .await;
    let query = format!("SELECT n, who, note FROM {} ORDER BY id", table.name);
    Outage {
        resource: resource["id"].as_str().unwrap(),
        rule: &rule,
        client_id: "my\\dev",
        restart: false,
    }
    .run(
        &mut node,
        &mut relay,
        |n| format!("{n}:MY\\DEV:it's"),
        || async {
            let rows: Vec<(i32, String, String)> =
                sqlx::query_as(&query).fetch_all(&table.pool).await.unwrap();
            rows.into_iter()
                .map(|(n, who, note)| format!("{n}:{who}:{note}"))
                .collect()
        },
    )
    .await;
    table.drop_table().await;
}
