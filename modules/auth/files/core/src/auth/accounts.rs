//! Accounts: the `users` table and the rules for emails.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::db::{Columns, Database};

/// A user as every response shows it: never with the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub full_name: Option<String>,
    pub role: Role,
    /// Whether the owner proved the address is theirs (a link sent there was opened).
    pub email_verified: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// What a user may do beyond their own account. Every account registered through the api is a
/// `Customer`; staff roles are given by an operator, never by a request of the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    /// Staff who read everything and help customers, but change no configuration.
    Support,
    /// Staff with every permission.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Support => "support",
            Self::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Customer, Self::Support, Self::Admin]
            .into_iter()
            .find(|role| role.as_str() == text)
    }

    /// Support and admin: the roles of the operations endpoints.
    pub fn is_staff(self) -> bool {
        self >= Self::Support
    }
}

/// The columns [`User::from_row`] reads. A macro rather than a constant so that queries can
/// `concat!` it into the `&'static str` literals sqlx requires (they cannot be assembled at run
/// time, which keeps values out of SQL text). They are read by name, without the table: a query
/// that joins a table with columns of the same names (`id`, `created_at`...) and selects them
/// too gives those an alias, or the row holds one value per name.
macro_rules! user_columns {
    () => {
        "users.id, users.email, users.full_name, users.role, users.email_verified_at, \
         users.created_at"
    };
}
pub(crate) use user_columns;

impl User {
    /// Reads a user from the [`user_columns`] of `row`, by name, wherever the query put them.
    /// (By hand: sqlx's `FromRow` derive would compile both database drivers a second time.)
    pub fn from_row(row: &(impl Columns + ?Sized)) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.text("id")?,
            email: row.text("email")?,
            full_name: row.optional_text("full_name")?,
            role: Role::parse(&row.text("role")?).ok_or_else(|| {
                sqlx::Error::Decode("users.role is not customer, support or admin".into())
            })?,
            email_verified: row.optional_int("email_verified_at")?.is_some(),
            created_at: row.int("created_at")?,
        })
    }
}

/// An account as sign-in needs it.
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
    pub disabled: bool,
}

/// `email` trimmed and lower-cased: the form it is stored, compared and rate-limited in.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Whether a normalized email looks deliverable: `local@domain.tld`, within the lengths of RFC
/// 5321, without spaces. Whether it really is, only a confirmation email can tell.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    email.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !local.contains(['@', ' ', '\t', '\r', '\n', '"', '<', '>', ','])
        && domain.contains('.')
        && labels_ok
}

/// Inserts a new account on `conn`; fails with a unique violation when the email is taken.
pub async fn insert(
    conn: &mut AnyConnection,
    email: &str,
    password_hash: &str,
    full_name: Option<&str>,
    now: i64,
) -> Result<User, sqlx::Error> {
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, full_name, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&id)
    .bind(email)
    .bind(password_hash)
    .bind(full_name)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(User {
        id,
        email: email.to_owned(),
        full_name: full_name.map(str::to_owned),
        role: Role::Customer,
        email_verified: false,
        created_at: now,
    })
}

/// The account registered with a normalized `email`, if any.
pub async fn find_by_email(db: &Database, email: &str) -> Result<Option<Credentials>, sqlx::Error> {
    let query = concat!(
        "SELECT ",
        user_columns!(),
        ", users.password_hash, users.disabled_at FROM users WHERE email = $1"
    );
    let row = sqlx::query(query)
        .bind(email)
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| credentials(&row)).transpose()
}

/// The account with `id`, if any.
pub async fn find_by_id(db: &Database, id: &str) -> Result<Option<Credentials>, sqlx::Error> {
    let query = concat!(
        "SELECT ",
        user_columns!(),
        ", users.password_hash, users.disabled_at FROM users WHERE id = $1"
    );
    let row = sqlx::query(query)
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| credentials(&row)).transpose()
}

fn credentials(row: &AnyRow) -> Result<Credentials, sqlx::Error> {
    Ok(Credentials {
        user: User::from_row(row)?,
        password_hash: row.try_get("password_hash")?,
        disabled: row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
    })
}

pub async fn set_password_hash(
    conn: &mut AnyConnection,
    user_id: &str,
    password_hash: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(password_hash)
        .bind(now)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks `email` verified for `user_id`, if it is still the account's address (a link sent to
/// an address the account has since left proves nothing about the new one). False otherwise.
pub async fn mark_verified(
    conn: &mut AnyConnection,
    user_id: &str,
    email: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $1 \
         WHERE id = $2 AND email = $3",
    )
    .bind(now)
    .bind(user_id)
    .bind(email)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Moves `user_id` to `email`, verified (a link sent there was opened); fails with a unique
/// violation when another account has it. False when the account is gone.
pub async fn set_email(
    conn: &mut AnyConnection,
    user_id: &str,
    email: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE users SET email = $1, email_verified_at = $2, updated_at = $2 WHERE id = $3",
    )
    .bind(email)
    .bind(now)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Gives `user_id` the role `role`. Only operators do this (the admin service's
/// `create-admin` command): no request of a user changes a role.
pub async fn set_role(
    conn: &mut AnyConnection,
    user_id: &str,
    role: Role,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
        .bind(role.as_str())
        .bind(now)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(result.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;
    use crate::db::DatabaseConfig;

    #[tokio::test]
    async fn a_user_is_read_by_name_wherever_the_query_puts_its_columns() {
        let mut env = Env::from_vars([("DATABASE_URL", "sqlite::memory:")]);
        let config = DatabaseConfig::from_env(&mut env);
        env.finish().unwrap();
        let db = Database::connect(&config).await.unwrap();
        // Another table's column first, then the user's in another order than `user_columns`.
        let row = sqlx::query(
            "SELECT 's1' AS session_id, 7 AS created_at, 'admin' AS role, NULL AS full_name, \
             5 AS email_verified_at, 'ada@example.com' AS email, 'u1' AS id",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        db.close().await;

        let user = User::from_row(&row).unwrap();

        let expected = User {
            id: "u1".into(),
            email: "ada@example.com".into(),
            full_name: None,
            role: Role::Admin,
            email_verified: true,
            created_at: 7,
        };
        assert_eq!(user, expected);
    }

    #[test]
    fn roles_round_trip_and_rank() {
        for role in [Role::Customer, Role::Support, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert!(!Role::Customer.is_staff());
        assert!(Role::Support.is_staff() && Role::Admin.is_staff());
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(normalize_email("  Ada@Example.COM "), "ada@example.com");
    }

    #[test]
    fn accepts_plausible_emails_only() {
        for good in [
            "ada@example.com",
            "a.b+tag@mail.example.co.uk",
            "x@xn--bcher-kva.ch",
        ] {
            assert!(is_valid_email(good), "{good}");
        }
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@exa mple.com",
            "ada@-example.com",
            "ada@example..com",
            "a b@example.com",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }
}
