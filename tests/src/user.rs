//! Credentials tests log in with.

/// A PostgreSQL login: role, password and the database to connect to.
///
/// The node image creates the roles below on every primary (replicas copy them), so tests
/// name them instead of repeating literals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
    pub database: String,
}

impl User {
    /// Any role, password and database.
    pub fn new(name: &str, password: &str, database: &str) -> User {
        User {
            name: name.to_string(),
            password: password.to_string(),
            database: database.to_string(),
        }
    }

    /// The superuser `postgres`, on the `postgres` database.
    pub fn postgres() -> User {
        User::new("postgres", "postgres", "postgres")
    }

    /// The application role `app`, owner of the database `app` and member of `pg_monitor`.
    pub fn app() -> User {
        User::new("app", "app", "app")
    }
}
