//! A real PostgreSQL client for the database tests, and the URL dockhand gives for a database.

use super::{text, Env, POSTGRES_IMAGE};

/// A Database manifest of the test image on a fixed port (tests run in parallel; allocated
/// ports are tested apart), with `extra` spec lines.
pub fn database(name: &str, port: u16, extra: &str) -> String {
    format!(
        "apiVersion: dockhand/v1\nkind: Database\nmetadata: {{name: {name}}}\nspec:\n  image: {POSTGRES_IMAGE}\n  port: {port}\n{extra}"
    )
}

/// Runs statements with a real client; the first column of the first row (empty if none).
pub fn query(url: &str, sql: &str) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use sqlx::{Connection, Row};
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let rows = sqlx::raw_sql(sql)
            .fetch_all(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .first()
            .and_then(|r| r.try_get::<String, _>(0).ok())
            .unwrap_or_default())
    })
}

/// `dockhand db url NAME`: the full URL, password included.
pub fn url(env: &Env, name: &str) -> String {
    let out = env.run("db", &["url", name]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An environment with the PostgreSQL image built.
pub fn env_with_postgres(name: &str) -> Option<Env> {
    let env = Env::new(name)?;
    super::postgres_image();
    Some(env)
}
