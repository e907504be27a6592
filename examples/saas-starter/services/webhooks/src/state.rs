//! The state this service's routers share: what `main.rs` connected to or built at start, handed
//! to each module's `routes(state.clone())`.
//!
//! Handlers take the piece they use, `State<Database>` or `State<Auth>`, and extractors such as
//! `CurrentUser` find the `Auth` here themselves, through the `FromRef` impls below. A module
//! that needs something more (the billing plans, the webhooks store) keeps it in its own router's
//! state next to this one, so that a service without that module has no field for it.

use axum::extract::FromRef;

use saas_starter_core::auth::Auth;
use saas_starter_core::db::Database;

/// The database and the authentication (the staff flavour in the admin service). Cheap to clone:
/// both are handles to shared pools and keys.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub auth: Auth,
}

impl AppState {
    pub fn new(db: Database, auth: Auth) -> Self {
        Self { db, auth }
    }
}

impl FromRef<AppState> for Database {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl FromRef<AppState> for Auth {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
