//! Test databases: a fresh SQLite file or a fresh PostgreSQL database per
//! test, and [`both_backends!`](crate::both_backends) to run a store case on
//! each.

use anyhow::Context;
use ordersaga_store::Store;

/// A database for one test: an SQLite file in a temporary directory, or a
/// fresh PostgreSQL database (`ORDERSAGA_TEST_POSTGRES_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test`) dropped when this is dropped.
pub enum TestDatabase {
    /// SQLite file.
    Sqlite {
        /// Where the file lives; removed on drop.
        dir: tempfile::TempDir,
        /// Its URL.
        url: String,
    },
    /// PostgreSQL database.
    Postgres {
        /// The server's maintenance database, to create and drop ours.
        admin_url: String,
        /// Our database's name.
        name: String,
        /// Its URL.
        url: String,
    },
}

impl TestDatabase {
    /// A fresh SQLite file.
    pub fn sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
        Ok(Self::Sqlite { dir, url })
    }

    /// A fresh PostgreSQL database.
    pub async fn postgres() -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let admin_url = std::env::var("ORDERSAGA_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let name = format!("ordersaga_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(&admin_url)
            .await
            .with_context(|| format!("PostgreSQL at {admin_url}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        let (base, _) = admin_url
            .rsplit_once('/')
            .context("database URL has no path")?;
        let url = format!("{base}/{name}");
        Ok(Self::Postgres {
            admin_url,
            name,
            url,
        })
    }

    /// The URL to connect to.
    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }

    /// Connects a store (runs the migrations).
    pub async fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::connect(self.url()).await?)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Self::Postgres {
            admin_url, name, ..
        } = self
        else {
            return;
        };
        // Drop runs outside async: do the async cleanup on a thread of its own.
        let (admin_url, name) = (admin_url.clone(), name.clone());
        let cleanup = std::thread::spawn(move || -> anyhow::Result<()> {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    let admin = sqlx::AnyPool::connect(&admin_url).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&admin)
                        .await?;
                    admin.close().await;
                    anyhow::Ok(())
                })
        });
        if let Ok(Err(e)) = cleanup.join() {
            eprintln!("could not drop test database: {e:#}");
        }
    }
}

/// Runs each named `async fn case(store: Store) -> anyhow::Result<()>` of
/// the calling test file on a fresh SQLite file (`sqlite::case`) and on a
/// fresh PostgreSQL database (`postgres::case`).
#[macro_export]
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() -> anyhow::Result<()> {
                let db = $crate::TestDatabase::sqlite()?;
                let store = db.store().await?;
                super::$case(store.clone()).await?;
                store.close().await;
                Ok(())
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() -> anyhow::Result<()> {
                let db = $crate::TestDatabase::postgres().await?;
                let store = db.store().await?;
                super::$case(store.clone()).await?;
                store.close().await;
                Ok(())
            })*
        }
    };
}
