//! The HTTP side of [`crate::orgs`]: [`Tenant`] as an axum extractor, for the routes with an
//! `{org}` path segment. It authenticates the request (401 without credentials), then looks the
//! membership up once, by primary key, with the organization's row (`orgs::membership`): a
//! caller who is not a member of the organization named in the path (another organization's
//! member, a removed member, an unknown or guessed id) gets 404, the answer a missing
//! organization gets, so that nothing tells them it exists. An access token switched to an
//! organization (`POST /api/orgs/{org}/switch`) is for that organization only: with another one
//! in the path, 404 too.

use std::collections::HashMap;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use crate::auth::{Auth, CurrentUser};
use crate::db::Database;
use crate::error::ApiError;
use crate::http::Path;
use crate::orgs::{self, Tenant, TenantId};

/// The path parameter that names the organization.
const ORG_PARAM: &str = "org";

impl<S> FromRequestParts<S> for Tenant
where
    Auth: FromRef<S>,
    Database: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        // The services' `Path`: a NUL character is a 400 in JSON, before any query sees it.
        let Path(mut params) =
            Path::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        let org_id = params
            .remove(ORG_PARAM)
            .ok_or_else(|| ApiError::internal("a Tenant route has no {org} path segment"))?;
        if user
            .org_id
            .as_deref()
            .is_some_and(|scoped| scoped != org_id)
        {
            return Err(ApiError::NotFound("organization"));
        }
        let db = Database::from_ref(state);
        let organization = orgs::membership(&db, &org_id, &user.user.id)
            .await?
            .ok_or(ApiError::NotFound("organization"))?;
        Ok(Tenant {
            id: TenantId::checked(org_id),
            user,
            role: organization.role,
            organization,
        })
    }
}
