//! The back office: who may do what ([`Permission`]), the staff member behind a request
//! ([`Staff`]), and the operations the admin panel and its JSON API share:
//!
//! - [`customers`]: search, a customer's page, disabling and enabling accounts;
//! - [`impersonation`]: acting as a customer for at most 15 minutes, audited;
//! - [`audit`]: the append-only log of every staff action;
//! - [`metrics`]: the dashboard's figures.
//!
//! Staff are users of the shared `users` table whose role is `support` or `admin` (see
//! [`Role`]); the first admin is made with `cargo run -p admin -- create-admin`.

pub mod audit;
pub mod customers;
pub mod impersonation;
pub mod metrics;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::auth::{AuthError, CurrentUser, Role, User};
use crate::error::FieldErrors;

/// What staff do, each allowed to some roles ([`Permission::allowed_to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See customers, subscriptions, metrics, the audit log, flags and webhook events.
    View,
    /// Act as a customer (never as staff), with a written reason.
    Impersonate,
    /// Change things: disable accounts, revoke sessions, edit flags, replay webhook events.
    Manage,
}

impl Permission {
    /// Support staff view and impersonate; admins do everything; customers nothing.
    pub fn allowed_to(self, role: Role) -> bool {
        match role {
            Role::Admin => true,
            Role::Support => matches!(self, Self::View | Self::Impersonate),
            Role::Customer => false,
        }
    }
}

/// The staff member a request comes from, with the address it comes from (for the audit log).
/// As an extractor it answers 401 without valid credentials (Bearer token or the panel's
/// session cookie) and 403 for customers and for impersonation tokens.
#[derive(Debug, Clone)]
pub struct Staff {
    pub user: User,
    pub session_id: String,
    pub client_ip: Option<IpAddr>,
}

impl Staff {
    /// `current` as staff: 403 unless their role is staff and they act as themselves.
    pub fn from_current(
        current: CurrentUser,
        client_ip: Option<IpAddr>,
    ) -> Result<Self, AdminError> {
        if current.impersonator.is_some() || !current.user.role.is_staff() {
            return Err(AdminError::NotStaff);
        }
        Ok(Self {
            user: current.user,
            session_id: current.session_id,
            client_ip,
        })
    }

    /// 403 unless this staff member's role allows `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), AdminError> {
        if permission.allowed_to(self.user.role) {
            Ok(())
        } else {
            Err(AdminError::NotPermitted)
        }
    }

    /// Whether this staff member's role allows `permission`, for pages that show or hide
    /// actions.
    pub fn may(&self, permission: Permission) -> bool {
        permission.allowed_to(self.user.role)
    }

    /// The audit log's record of who acts.
    pub fn actor(&self) -> audit::Actor<'_> {
        audit::Actor {
            user_id: &self.user.id,
            email: &self.user.email,
            client_ip: self.client_ip,
        }
    }
}

/// Why a back-office operation failed, in the domain's terms. How each is answered over HTTP
/// is the service edge's business (`crate::error::admin`).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is not a staff member's acting as themselves (a customer, or an
    /// impersonation token).
    #[error("not a staff member")]
    NotStaff,
    /// The staff member's role does not allow this.
    #[error("the role does not allow this")]
    NotPermitted,
    /// Some inputs (a filter, a reason) are invalid, each explained by field name.
    #[error("invalid fields: {0:?}")]
    Invalid(FieldErrors),
    /// No account has this id.
    #[error("customer not found")]
    UnknownCustomer,
    /// Staff accounts are neither disabled nor impersonated from the back office.
    #[error("the account is a staff account")]
    StaffAccount,
    /// A disabled account cannot be impersonated.
    #[error("the account is disabled")]
    AccountDisabled,
    /// No impersonation in force has this id (or it is another staff member's).
    #[error("impersonation not found")]
    UnknownImpersonation,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl AdminError {
    /// An [`AdminError::Invalid`] about one field.
    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Self {
        Self::Invalid(FieldErrors::from([(field.to_owned(), problem.into())]))
    }
}

/// A page of results and how to ask for the next ones.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The 1-based number of this page.
    pub page: u32,
    pub per_page: u32,
    /// Whether a next page has items.
    pub has_more: bool,
}

/// `?page=&per_page=` of list endpoints and pages.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct PageQuery {
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

impl PageQuery {
    /// The most items a page holds, whatever is asked.
    pub const MAX_PER_PAGE: u32 = 100;
    const DEFAULT_PER_PAGE: u32 = 25;

    /// The page number (from 1) and its size (1 to [`Self::MAX_PER_PAGE`]).
    pub fn resolve(self) -> (u32, u32) {
        let per_page = self
            .per_page
            .unwrap_or(Self::DEFAULT_PER_PAGE)
            .clamp(1, Self::MAX_PER_PAGE);
        (self.page.unwrap_or(1).max(1), per_page)
    }

    /// The `LIMIT` and `OFFSET` of the page, the limit one more than the page holds so that
    /// [`Page::from_rows`] knows whether there are more.
    pub fn limit_offset(self) -> (i64, i64) {
        let (page, per_page) = self.resolve();
        (
            i64::from(per_page) + 1,
            i64::from(page - 1) * i64::from(per_page),
        )
    }
}

impl<T> Page<T> {
    /// The page `query` asked for from `rows`, fetched with [`PageQuery::limit_offset`].
    pub fn from_rows(query: PageQuery, mut rows: Vec<T>) -> Self {
        let (page, per_page) = query.resolve();
        let has_more = rows.len() > per_page as usize;
        rows.truncate(per_page as usize);
        Self {
            items: rows,
            page,
            per_page,
            has_more,
        }
    }
}

/// The `LIKE` pattern (for `LIKE $1 ESCAPE '\'` on lower-cased columns) that finds the text of a
/// search box anywhere: lower-cased, its own wildcards escaped. `None` for an empty box, which
/// lists everything.
pub fn like_pattern(q: Option<&str>) -> Option<String> {
    let q = q.map(str::trim).filter(|q| !q.is_empty())?;
    let escaped = q
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Some(format!("%{escaped}%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_views_and_impersonates_but_manages_nothing() {
        use Permission::*;
        let allowed = |role| {
            [View, Impersonate, Manage]
                .into_iter()
                .filter(|permission| permission.allowed_to(role))
                .collect::<Vec<_>>()
        };

        assert_eq!(allowed(Role::Admin), [View, Impersonate, Manage]);
        assert_eq!(allowed(Role::Support), [View, Impersonate]);
        assert_eq!(allowed(Role::Customer), []);
    }

    #[test]
    fn pages_are_bounded_and_know_whether_more_follow() {
        let query = PageQuery {
            page: Some(2),
            per_page: Some(1_000),
        };
        assert_eq!(query.resolve(), (2, PageQuery::MAX_PER_PAGE));
        assert_eq!(query.limit_offset(), (101, 100));

        let small = PageQuery {
            page: Some(0),
            per_page: Some(2),
        };
        assert_eq!(small.limit_offset(), (3, 0));
        let page = Page::from_rows(small, vec![1, 2, 3]);
        assert_eq!((page.items, page.has_more), (vec![1, 2], true));
        assert!(!Page::from_rows(small, vec![1, 2]).has_more);
    }
}
