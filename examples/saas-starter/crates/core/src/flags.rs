//! Feature flags: named switches the product asks about for a user, managed by staff in the
//! admin panel and its JSON API, and read by users through the api's `GET /api/flags`.
//!
//! A flag has a key, a description, whether it is enabled, a rollout percentage and what the
//! rollout splits (users, or organizations); it can also be overridden on or off for single
//! users and for single organizations. For a user, in the organization the request is for if it
//! names one, a flag is ([`decide_for`]):
//!
//! 1. the user's override, when there is one;
//! 2. otherwise the organization's override, when there is one;
//! 3. otherwise off, when the flag is disabled;
//! 4. otherwise on when the bucket ([`bucket`], 0 to 99) of the user, or of the organization for
//!    a flag rolled out by organization, is below the rollout percentage (a flag rolled out by
//!    organization is off for a request without one).
//!
//! The bucket is a stable hash of the flag's key and the user's (or organization's) id, so a user
//! keeps their answer from one request to the next and on every instance, every member of an
//! organization gets the same answer, raising the percentage only ever adds users (and lowering
//! it only removes some), and each flag splits users independently of the others.
//!
//! Every change is made by a staff member and writes an entry to the audit log (`flag.create`,
//! `flag.update`, `flag.delete`, `flag.override`, `flag.org_override`) in the transaction of the change, so neither
//! exists without the other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::admin::audit::{self, Actor};
use crate::auth::accounts::normalize_email;
use crate::db::{Backend, Database};
use crate::error::{BoxError, FieldErrors};

/// Why a flag operation failed, in the domain's terms; the service edge (`crate::error::flags`)
/// says how each is answered over HTTP.
#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    /// Some inputs are invalid, each explained by field name.
    #[error("invalid fields: {0:?}")]
    Invalid(FieldErrors),
    /// A flag has this key already.
    #[error("a flag with the key `{0}` exists already")]
    KeyTaken(String),
    /// No flag has this key.
    #[error("flag not found")]
    UnknownFlag,
    /// No account has this id or email.
    #[error("user not found")]
    UnknownUser,
    /// The user (or organization) has no override of this flag.
    #[error("override not found")]
    UnknownOverride,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Stored data the code does not expect: a bug.
    #[error(transparent)]
    Internal(BoxError),
}

/// The longest key, in bytes (keys are ASCII).
pub const MAX_KEY_LEN: usize = 64;

/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// What the audit log calls a flag's entries' target.
const TARGET_TYPE: &str = "flag";

/// The longest organization id an override takes, in bytes (the orgs module's ids are UUIDs).
pub const MAX_ORG_ID_LEN: usize = 64;

/// What a flag's rollout splits: users one by one, or organizations (every member of an
/// organization then gets the same answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RolloutBy {
    #[default]
    User,
    Org,
}

impl RolloutBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Org => "org",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::User, Self::Org]
            .into_iter()
            .find(|by| by.as_str() == text)
    }
}

/// A flag and its rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Flag {
    pub key: String,
    pub description: String,
    pub enabled: bool,
    /// 0 to 100: the share of users (or organizations) an enabled flag is on for.
    pub rollout_percent: u8,
    /// What the rollout splits.
    pub rollout_by: RolloutBy,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A flag forced on or off for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = FlagOverride)]
pub struct Override {
    pub user_id: String,
    /// The user's email, to show who it is.
    pub email: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A flag forced on or off for one organization: for its members, in requests for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = FlagOrgOverride)]
pub struct OrgOverride {
    pub org_id: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A flag with its overrides, as its page and `GET /api/admin/flags/{key}` show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FlagDetail {
    #[serde(flatten)]
    pub flag: Flag,
    /// By email.
    pub overrides: Vec<Override>,
    /// By organization id.
    pub org_overrides: Vec<OrgOverride>,
}

/// A new flag, as `POST /api/admin/flags` takes it: only the key is required. A new flag is
/// disabled and, once enabled, on for everyone unless told otherwise.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "new-dashboard", "description": "The redesigned dashboard",
    "enabled": true, "rollout_percent": 10}))]
pub struct NewFlag {
    pub key: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "everyone")]
    pub rollout_percent: i64,
    #[serde(default)]
    pub rollout_by: RolloutBy,
}

fn everyone() -> i64 {
    100
}

impl NewFlag {
    /// The flag with its description trimmed, or what is wrong with each invalid field.
    pub fn validate(self) -> Result<Self, FieldErrors> {
        let mut fields = FieldErrors::new();
        let description = self.description.trim().to_owned();
        note(&mut fields, "key", key_violation(&self.key));
        note(
            &mut fields,
            "description",
            description_violation(&description),
        );
        note(
            &mut fields,
            "rollout_percent",
            percent_violation(self.rollout_percent),
        );
        if fields.is_empty() {
            Ok(Self {
                description,
                ..self
            })
        } else {
            Err(fields)
        }
    }
}

/// Changes to a flag, as `PUT /api/admin/flags/{key}` takes them: a field left out keeps its
/// value.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true, "rollout_percent": 50}))]
pub struct FlagUpdate {
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub rollout_percent: Option<i64>,
    pub rollout_by: Option<RolloutBy>,
}

impl FlagUpdate {
    /// The changes with the description trimmed, or what is wrong with each invalid field.
    pub fn validate(self) -> Result<Self, FieldErrors> {
        let mut fields = FieldErrors::new();
        let description = self
            .description
            .map(|description| description.trim().to_owned());
        if let Some(description) = &description {
            note(
                &mut fields,
                "description",
                description_violation(description),
            );
        }
        if let Some(percent) = self.rollout_percent {
            note(&mut fields, "rollout_percent", percent_violation(percent));
        }
        if fields.is_empty() {
            Ok(Self {
                description,
                ..self
            })
        } else {
            Err(fields)
        }
    }
}

fn note(fields: &mut FieldErrors, field: &str, problem: Option<&str>) {
    if let Some(problem) = problem {
        fields.insert(field.to_owned(), problem.to_owned());
    }
}

/// What is wrong with `key`, if anything: keys match `^[a-z0-9][a-z0-9._-]{0,63}$`, so that
/// they read the same in code, URLs, logs and JSON.
pub fn key_violation(key: &str) -> Option<&'static str> {
    let mut bytes = key.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit());
    let rest_ok = bytes.all(|byte| {
        byte.is_ascii_lowercase() || byte.is_ascii_digit() || matches!(byte, b'.' | b'_' | b'-')
    });
    (!(first_ok && rest_ok && key.len() <= MAX_KEY_LEN)).then_some(
        "must be 1 to 64 characters: lower-case letters, digits, `.`, `_` and `-`, starting \
         with a letter or a digit",
    )
}

fn description_violation(description: &str) -> Option<&'static str> {
    (description.chars().count() > MAX_DESCRIPTION_CHARS)
        .then_some("must be at most 500 characters long")
}

fn percent_violation(percent: i64) -> Option<&'static str> {
    (!(0..=100).contains(&percent)).then_some("must be a whole number from 0 to 100")
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// Why a flag is on or off for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The user's override decides.
    Override(bool),
    /// The override of the request's organization decides.
    OrgOverride(bool),
    /// The flag is disabled, and off for everyone without an override.
    Disabled,
    /// The flag is rolled out by organization and the request is for none: off.
    NoOrganization,
    /// The flag is enabled, and on when the bucket of the user (or of the organization) is below
    /// the percentage.
    Rollout {
        bucket: u8,
        percent: u8,
        by: RolloutBy,
    },
}

impl Decision {
    pub fn is_on(self) -> bool {
        match self {
            Self::Override(on) | Self::OrgOverride(on) => on,
            Self::Disabled | Self::NoOrganization => false,
            Self::Rollout {
                bucket, percent, ..
            } => bucket < percent,
        }
    }

    /// The reason in a few words, for staff.
    pub fn explain(self) -> String {
        match self {
            Self::Override(true) => "overridden on".into(),
            Self::Override(false) => "overridden off".into(),
            Self::OrgOverride(true) => "overridden on for the organization".into(),
            Self::OrgOverride(false) => "overridden off for the organization".into(),
            Self::Disabled => "the flag is disabled".into(),
            Self::NoOrganization => "rolled out by organization, and no organization".into(),
            Self::Rollout {
                bucket,
                percent,
                by,
            } => {
                let side = if bucket < percent {
                    "below"
                } else {
                    "not below"
                };
                let whose = match by {
                    RolloutBy::User => "",
                    RolloutBy::Org => "the organization's ",
                };
                format!("{whose}bucket {bucket}, {side} the rollout of {percent}%")
            }
        }
    }
}

/// A flag's rule, as [`decide_for`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct Rule<'a> {
    pub key: &'a str,
    pub enabled: bool,
    pub rollout_percent: u8,
    pub rollout_by: RolloutBy,
}

/// Whom a flag is decided for: a user, in the organization the request is for, if any (the
/// active organization of an access token switched to one, docs/orgs.md).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub user_id: &'a str,
    pub org_id: Option<&'a str>,
}

/// The overrides of a flag for a [`Target`]: the user's and the organization's, if any.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub user: Option<bool>,
    pub org: Option<bool>,
}

/// How `rule` decides for `target`, who has `overrides`: the user's override first, then the
/// organization's, then the rule. Pure: the same inputs always give the same answer.
pub fn decide_for(rule: Rule<'_>, overrides: Overrides, target: Target<'_>) -> Decision {
    if let Some(on) = overrides.user {
        return Decision::Override(on);
    }
    if let Some(on) = overrides.org {
        return Decision::OrgOverride(on);
    }
    if !rule.enabled {
        return Decision::Disabled;
    }
    let subject = match (rule.rollout_by, target.org_id) {
        (RolloutBy::User, _) => target.user_id,
        (RolloutBy::Org, Some(org_id)) => org_id,
        (RolloutBy::Org, None) => return Decision::NoOrganization,
    };
    Decision::Rollout {
        bucket: bucket(rule.key, subject),
        percent: rule.rollout_percent,
        by: rule.rollout_by,
    }
}

/// How flag `key` (`enabled`, rolled out to `rollout_percent` of users) decides for user
/// `user_id`, who has `user_override` for it or not, outside any organization: [`decide_for`]
/// for a flag rolled out by user.
pub fn decide(
    key: &str,
    enabled: bool,
    rollout_percent: u8,
    user_override: Option<bool>,
    user_id: &str,
) -> Decision {
    let rule = Rule {
        key,
        enabled,
        rollout_percent,
        rollout_by: RolloutBy::User,
    };
    let overrides = Overrides {
        user: user_override,
        org: None,
    };
    let target = Target {
        user_id,
        org_id: None,
    };
    decide_for(rule, overrides, target)
}

/// Whether flag `key` is on for `user_id` (see [`decide`]).
pub fn evaluate(
    key: &str,
    enabled: bool,
    rollout_percent: u8,
    user_override: Option<bool>,
    user_id: &str,
) -> bool {
    decide(key, enabled, rollout_percent, user_override, user_id).is_on()
}

/// The place, 0 to 99, of a user (or an organization, by its id) in the rollout of flag `key`:
/// the first eight bytes of SHA-256(`"<key>:<id>"`), big-endian, modulo 100. Changing this
/// reshuffles every rollout in progress, so a unit test pins a few values.
pub fn bucket(key: &str, id: &str) -> u8 {
    let digest = Sha256::digest(format!("{key}:{id}").as_bytes());
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    let place = u64::from_be_bytes(first) % 100;
    u8::try_from(place).unwrap_or(0)
}

/// A flag as it is for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub key: String,
    pub decision: Decision,
}

/// Every flag as it is for `target`, by key: one query, the flags with the target's overrides.
pub async fn evaluate_for(db: &Database, target: Target<'_>) -> sqlx::Result<Vec<Evaluation>> {
    let rows = sqlx::query(
        "SELECT f.key, f.enabled, f.rollout_percent, f.rollout_by, \
         u.enabled AS user_override, o.enabled AS org_override FROM feature_flags f \
         LEFT JOIN feature_flag_overrides u ON u.flag_key = f.key AND u.user_id = $1 \
         LEFT JOIN feature_flag_org_overrides o ON o.flag_key = f.key AND o.org_id = $2 \
         ORDER BY f.key",
    )
    .bind(target.user_id)
    .bind(target.org_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let key: String = row.try_get("key")?;
            let flag_override = |column: &str| -> sqlx::Result<Option<bool>> {
                Ok(row.try_get::<Option<i64>, _>(column)?.map(|on| on != 0))
            };
            let overrides = Overrides {
                user: flag_override("user_override")?,
                org: flag_override("org_override")?,
            };
            let rule = Rule {
                key: &key,
                enabled: row.try_get::<i64, _>("enabled")? != 0,
                rollout_percent: percent(row.try_get("rollout_percent")?)?,
                rollout_by: rollout_by(&row.try_get::<String, _>("rollout_by")?)?,
            };
            let decision = decide_for(rule, overrides, target);
            Ok(Evaluation { key, decision })
        })
        .collect()
}

/// Every flag for `target` as `key → on`, the body of `GET /api/flags`.
pub async fn values_for(db: &Database, target: Target<'_>) -> sqlx::Result<BTreeMap<String, bool>> {
    let evaluations = evaluate_for(db, target).await?;
    Ok(evaluations
        .into_iter()
        .map(|evaluation| (evaluation.key, evaluation.decision.is_on()))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The store

fn flag(row: &AnyRow) -> sqlx::Result<Flag> {
    Ok(Flag {
        key: row.try_get("key")?,
        description: row.try_get("description")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        rollout_percent: percent(row.try_get("rollout_percent")?)?,
        rollout_by: rollout_by(&row.try_get::<String, _>("rollout_by")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn rollout_by(stored: &str) -> sqlx::Result<RolloutBy> {
    RolloutBy::parse(stored)
        .ok_or_else(|| sqlx::Error::Decode("feature_flags.rollout_by is not user or org".into()))
}

fn percent(stored: i64) -> sqlx::Result<u8> {
    u8::try_from(stored)
        .ok()
        .filter(|percent| *percent <= 100)
        .ok_or_else(|| sqlx::Error::Decode("feature_flags.rollout_percent is not 0 to 100".into()))
}

/// Every flag, by key.
pub async fn list(db: &Database) -> sqlx::Result<Vec<Flag>> {
    let rows = sqlx::query(
        "SELECT key, description, enabled, rollout_percent, rollout_by, created_at, updated_at \
         FROM feature_flags ORDER BY key",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(flag).collect()
}

/// How many overrides each flag has, by key (flags without any are left out).
pub async fn override_counts(db: &Database) -> sqlx::Result<BTreeMap<String, i64>> {
    let rows = sqlx::query(
        "SELECT flag_key, COUNT(*) AS overrides FROM feature_flag_overrides \
         GROUP BY flag_key ORDER BY flag_key",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("flag_key")?, row.try_get("overrides")?)))
        .collect()
}

/// Flag `key` with its overrides; 404 when there is none.
pub async fn get(db: &Database, key: &str) -> Result<FlagDetail, FlagsError> {
    let row = sqlx::query(
        "SELECT key, description, enabled, rollout_percent, rollout_by, created_at, updated_at \
         FROM feature_flags WHERE key = $1",
    )
    .bind(key)
    .fetch_optional(db.pool())
    .await?
    .ok_or(FlagsError::UnknownFlag)?;
    let flag = flag(&row)?;
    let rows = sqlx::query(
        "SELECT feature_flag_overrides.user_id, users.email, feature_flag_overrides.enabled, \
         feature_flag_overrides.created_at, feature_flag_overrides.updated_at \
         FROM feature_flag_overrides JOIN users ON users.id = feature_flag_overrides.user_id \
         WHERE feature_flag_overrides.flag_key = $1 ORDER BY users.email",
    )
    .bind(key)
    .fetch_all(db.pool())
    .await?;
    let overrides = rows.iter().map(override_row).collect::<sqlx::Result<_>>()?;
    let rows = sqlx::query(
        "SELECT org_id, enabled, created_at, updated_at FROM feature_flag_org_overrides \
         WHERE flag_key = $1 ORDER BY org_id",
    )
    .bind(key)
    .fetch_all(db.pool())
    .await?;
    let org_overrides = rows
        .iter()
        .map(org_override_row)
        .collect::<sqlx::Result<_>>()?;
    Ok(FlagDetail {
        flag,
        overrides,
        org_overrides,
    })
}

fn org_override_row(row: &AnyRow) -> sqlx::Result<OrgOverride> {
    Ok(OrgOverride {
        org_id: row.try_get("org_id")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn override_row(row: &AnyRow) -> sqlx::Result<Override> {
    Ok(Override {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Creates flag `new` (validated here: 422 with the invalid fields); 409 when the key is taken.
pub async fn create(
    db: &Database,
    actor: Actor<'_>,
    new: NewFlag,
    now: i64,
) -> Result<FlagDetail, FlagsError> {
    let new = new.validate().map_err(FlagsError::Invalid)?;
    let mut tx = db.begin_write().await?;
    let inserted = sqlx::query(
        "INSERT INTO feature_flags (key, description, enabled, rollout_percent, rollout_by, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (key) DO NOTHING",
    )
    .bind(&new.key)
    .bind(&new.description)
    .bind(i64::from(new.enabled))
    .bind(new.rollout_percent)
    .bind(new.rollout_by.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(FlagsError::KeyTaken(new.key));
    }
    let details = json!({
        "description": new.description,
        "enabled": new.enabled,
        "rollout_percent": new.rollout_percent,
        "rollout_by": new.rollout_by,
    })
    .to_string();
    let action = audit::Action {
        action: "flag.create",
        target_type: TARGET_TYPE,
        target_id: &new.key,
        reason: None,
        details: Some(&details),
    };
    audit::record(&mut tx, actor, action, now).await?;
    tx.commit().await?;
    get(db, &new.key).await
}

/// Flag `key` in `tx`, locked until the transaction ends (on PostgreSQL; SQLite's write
/// transaction holds the whole database already); 404 when there is none.
async fn lock_flag(
    db: &Database,
    tx: &mut Transaction<'static, Any>,
    key: &str,
) -> Result<Flag, FlagsError> {
    let query = match db.backend() {
        Backend::Postgres => {
            "SELECT key, description, enabled, rollout_percent, rollout_by, created_at, updated_at \
             FROM feature_flags WHERE key = $1 FOR UPDATE"
        }
        Backend::Sqlite => {
            "SELECT key, description, enabled, rollout_percent, rollout_by, created_at, updated_at \
             FROM feature_flags WHERE key = $1"
        }
    };
    let row = sqlx::query(query)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(FlagsError::UnknownFlag)?;
    Ok(flag(&row)?)
}

/// The editable fields of `flag`, for the audit log.
fn rule_json(flag: &Flag) -> serde_json::Value {
    json!({
        "description": flag.description,
        "enabled": flag.enabled,
        "rollout_percent": flag.rollout_percent,
        "rollout_by": flag.rollout_by,
    })
}

/// Applies `update` (validated here: 422) to flag `key`; 404 when there is none.
pub async fn update(
    db: &Database,
    actor: Actor<'_>,
    key: &str,
    update: FlagUpdate,
    now: i64,
) -> Result<FlagDetail, FlagsError> {
    let update = update.validate().map_err(FlagsError::Invalid)?;
    let mut tx = db.begin_write().await?;
    let before = lock_flag(db, &mut tx, key).await?;
    let after = Flag {
        description: update
            .description
            .unwrap_or_else(|| before.description.clone()),
        enabled: update.enabled.unwrap_or(before.enabled),
        rollout_percent: match update.rollout_percent {
            Some(percent) => percent_of(percent)?,
            None => before.rollout_percent,
        },
        rollout_by: update.rollout_by.unwrap_or(before.rollout_by),
        updated_at: now,
        ..before.clone()
    };
    sqlx::query(
        "UPDATE feature_flags SET description = $1, enabled = $2, rollout_percent = $3, \
         rollout_by = $4, updated_at = $5 WHERE key = $6",
    )
    .bind(&after.description)
    .bind(i64::from(after.enabled))
    .bind(i64::from(after.rollout_percent))
    .bind(after.rollout_by.as_str())
    .bind(now)
    .bind(key)
    .execute(&mut *tx)
    .await?;
    let details = json!({"before": rule_json(&before), "after": rule_json(&after)}).to_string();
    let action = audit::Action {
        action: "flag.update",
        target_type: TARGET_TYPE,
        target_id: key,
        reason: None,
        details: Some(&details),
    };
    audit::record(&mut tx, actor, action, now).await?;
    tx.commit().await?;
    get(db, key).await
}

/// A validated percentage as stored.
fn percent_of(percent: i64) -> Result<u8, FlagsError> {
    u8::try_from(percent).map_err(|error| FlagsError::Internal(error.into()))
}

/// Deletes flag `key` and its overrides; 404 when there is none.
pub async fn delete(
    db: &Database,
    actor: Actor<'_>,
    key: &str,
    now: i64,
) -> Result<(), FlagsError> {
    let mut tx = db.begin_write().await?;
    let before = lock_flag(db, &mut tx, key).await?;
    // The foreign key cascades too; deleting here counts them for the log, and does not depend
    // on SQLite's `foreign_keys` pragma being on.
    let overrides = sqlx::query("DELETE FROM feature_flag_overrides WHERE flag_key = $1")
        .bind(key)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let org_overrides = sqlx::query("DELETE FROM feature_flag_org_overrides WHERE flag_key = $1")
        .bind(key)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM feature_flags WHERE key = $1")
        .bind(key)
        .execute(&mut *tx)
        .await?;
    let details = json!({
        "before": rule_json(&before),
        "overrides_deleted": overrides,
        "org_overrides_deleted": org_overrides,
    })
    .to_string();
    let action = audit::Action {
        action: "flag.delete",
        target_type: TARGET_TYPE,
        target_id: key,
        reason: None,
        details: Some(&details),
    };
    audit::record(&mut tx, actor, action, now).await?;
    tx.commit().await?;
    Ok(())
}

/// The user `who` names: an account id, or an email (any case); `None` when there is none.
pub async fn find_user(db: &Database, who: &str) -> sqlx::Result<Option<(String, String)>> {
    let who = who.trim();
    let row = sqlx::query("SELECT id, email FROM users WHERE id = $1 OR email = $2")
        .bind(who)
        .bind(normalize_email(who))
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| Ok((row.try_get("id")?, row.try_get("email")?)))
        .transpose()
}

/// The override of `user_id` for `key` in `tx`, if any.
async fn current_override(
    tx: &mut Transaction<'static, Any>,
    key: &str,
    user_id: &str,
) -> sqlx::Result<Option<Override>> {
    let row = sqlx::query(
        "SELECT feature_flag_overrides.user_id, users.email, feature_flag_overrides.enabled, \
         feature_flag_overrides.created_at, feature_flag_overrides.updated_at \
         FROM feature_flag_overrides JOIN users ON users.id = feature_flag_overrides.user_id \
         WHERE feature_flag_overrides.flag_key = $1 AND feature_flag_overrides.user_id = $2",
    )
    .bind(key)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(override_row).transpose()
}

/// Forces flag `key` on (`enabled`) or off for user `user_id`, replacing an override they
/// have; 404 when the flag or the user does not exist.
pub async fn set_override(
    db: &Database,
    actor: Actor<'_>,
    key: &str,
    user_id: &str,
    enabled: bool,
    now: i64,
) -> Result<Override, FlagsError> {
    let mut tx = db.begin_write().await?;
    lock_flag(db, &mut tx, key).await?;
    let email: String = sqlx::query("SELECT email FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(FlagsError::UnknownUser)?
        .try_get("email")?;
    let previous = current_override(&mut tx, key, user_id).await?;
    sqlx::query(
        "INSERT INTO feature_flag_overrides (flag_key, user_id, enabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (flag_key, user_id) \
         DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
    )
    .bind(key)
    .bind(user_id)
    .bind(i64::from(enabled))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    record_override(
        &mut tx,
        actor,
        key,
        (user_id, &email),
        previous.as_ref().map(|o| o.enabled),
        Some(enabled),
        now,
    )
    .await?;
    let saved = current_override(&mut tx, key, user_id)
        .await?
        .ok_or_else(|| FlagsError::Internal("the override just saved is missing".into()))?;
    tx.commit().await?;
    Ok(saved)
}

/// Takes away the override of `user_id` for `key`: the flag's rule decides for them again.
/// 404 when the flag does not exist or the user has no override for it.
pub async fn remove_override(
    db: &Database,
    actor: Actor<'_>,
    key: &str,
    user_id: &str,
    now: i64,
) -> Result<(), FlagsError> {
    let mut tx = db.begin_write().await?;
    lock_flag(db, &mut tx, key).await?;
    let previous = current_override(&mut tx, key, user_id)
        .await?
        .ok_or(FlagsError::UnknownOverride)?;
    sqlx::query("DELETE FROM feature_flag_overrides WHERE flag_key = $1 AND user_id = $2")
        .bind(key)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    record_override(
        &mut tx,
        actor,
        key,
        (user_id, &previous.email),
        Some(previous.enabled),
        None,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What is wrong with `org_id` as an override's organization, if anything. The flags module
/// does not require the orgs module, so the id is not looked up: it is checked for shape only.
fn org_id_violation(org_id: &str) -> Option<&'static str> {
    let ok = !org_id.is_empty()
        && org_id.len() <= MAX_ORG_ID_LEN
        && org_id.bytes().all(|byte| byte.is_ascii_graphic());
    (!ok).then_some("must be an organization's id: 1 to 64 visible ASCII characters")
}

/// The override of organization `org_id` for `key` in `tx`, if any.
async fn current_org_override(
    tx: &mut Transaction<'static, Any>,
    key: &str,
    org_id: &str,
) -> sqlx::Result<Option<OrgOverride>> {
    let row = sqlx::query(
        "SELECT org_id, enabled, created_at, updated_at FROM feature_flag_org_overrides \
         WHERE flag_key = $1 AND org_id = $2",
    )
    .bind(key)
    .bind(org_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(org_override_row).transpose()
}

/// Forces flag `key` on (`enabled`) or off for the members of organization `org_id`, in
/// requests for it, replacing an override it has; 404 when the flag does not exist, 422 when
/// `org_id` is not an id.
pub async fn set_org_override(
    db: &Database,
    actor: Actor<'_>,
    key: &str,
    org_id: &str,
    enabled: bool,
    now: i64,
) -> Result<OrgOverride, FlagsError> {
    let org_id = org_id.trim();
    if let Some(problem) = org_id_violation(org_id) {
        let fields = FieldErrors::from([("org_id".to_owned(), problem.to_owned())]);
        return Err(FlagsError::Invalid(fields));
    }
    let mut tx = db.begin_write().await?;
    lock_flag(db, &mut tx, key).await?;
    let previous = current_org_override(&mut tx, key, org_id).await?;
    sqlx::query(
        "INSERT INTO feature_flag_org_overrides (flag_key, org_id, enabled, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (flag_key, org_id) \
         DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
    )
    .bind(key)
    .bind(org_id)
    .bind(i64::from(enabled))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let change = (previous.map(|o| o.enabled), Some(enabled));
    record_org_override(&mut tx, actor, key, org_id, change, now).await?;
    let saved = current_org_override(&mut tx, key, org_id)
        .await?
        .ok_or_else(|| FlagsError::Internal("the override just saved is missing".into()))?;
    tx.commit().await?;
    Ok(saved)
}

/// Takes away the override of organization `org_id` for `key`. 404 when the flag does not
/// exist or the organization has no override for it.
pub async fn remove_org_override(
    db: &Database,
    actor: Actor<'_>,
    key: &str,
    org_id: &str,
    now: i64,
) -> Result<(), FlagsError> {
    let mut tx = db.begin_write().await?;
    lock_flag(db, &mut tx, key).await?;
    let previous = current_org_override(&mut tx, key, org_id)
        .await?
        .ok_or(FlagsError::UnknownOverride)?;
    sqlx::query("DELETE FROM feature_flag_org_overrides WHERE flag_key = $1 AND org_id = $2")
        .bind(key)
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    let change = (Some(previous.enabled), None);
    record_org_override(&mut tx, actor, key, org_id, change, now).await?;
    tx.commit().await?;
    Ok(())
}

/// `flag.org_override` on flag `key` for organization `org_id`: `(previous, enabled)`, `None`
/// (`null` in the log) for an override that did not exist before or no longer does.
async fn record_org_override(
    tx: &mut Transaction<'static, Any>,
    actor: Actor<'_>,
    key: &str,
    org_id: &str,
    (previous, enabled): (Option<bool>, Option<bool>),
    now: i64,
) -> sqlx::Result<()> {
    let details = json!({"org_id": org_id, "previous": previous, "enabled": enabled}).to_string();
    let action = audit::Action {
        action: "flag.org_override",
        target_type: TARGET_TYPE,
        target_id: key,
        reason: None,
        details: Some(&details),
    };
    audit::record(tx, actor, action, now).await
}

/// `flag.override` on flag `key` for `user` (id, email): `enabled` is what the override is now,
/// `null` in the log once it is removed.
async fn record_override(
    tx: &mut Transaction<'static, Any>,
    actor: Actor<'_>,
    key: &str,
    (user_id, email): (&str, &str),
    previous: Option<bool>,
    enabled: Option<bool>,
    now: i64,
) -> sqlx::Result<()> {
    let details = json!({
        "user_id": user_id,
        "email": email,
        "previous": previous,
        "enabled": enabled,
    })
    .to_string();
    let action = audit::Action {
        action: "flag.override",
        target_type: TARGET_TYPE,
        target_id: key,
        reason: None,
        details: Some(&details),
    };
    audit::record(tx, actor, action, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_lower_case_names() {
        for valid in [
            "a",
            "0",
            "new-checkout",
            "billing.v2_beta",
            &"k".repeat(MAX_KEY_LEN),
        ] {
            assert_eq!(key_violation(valid), None, "{valid}");
        }
        for invalid in [
            "",
            "-new",
            ".hidden",
            "_x",
            "New",
            "new checkout",
            "new/checkout",
            "café",
            &"k".repeat(MAX_KEY_LEN + 1),
        ] {
            assert!(key_violation(invalid).is_some(), "{invalid:?}");
        }
    }

    #[test]
    fn new_flags_report_every_invalid_field() {
        let new = NewFlag {
            key: "Bad Key".into(),
            description: "x".repeat(MAX_DESCRIPTION_CHARS + 1),
            enabled: true,
            rollout_percent: 101,
            rollout_by: RolloutBy::User,
        };
        let fields = new.validate().unwrap_err();
        assert_eq!(
            fields.keys().map(String::as_str).collect::<Vec<_>>(),
            ["description", "key", "rollout_percent"]
        );

        let new = NewFlag {
            key: "dark-mode".into(),
            description: "  The dark theme  ".into(),
            enabled: false,
            rollout_percent: 0,
            rollout_by: RolloutBy::Org,
        };
        assert_eq!(new.validate().unwrap().description, "The dark theme");
    }

    #[test]
    fn updates_check_only_the_fields_they_change() {
        assert!(FlagUpdate::default().validate().is_ok());
        let low = FlagUpdate {
            rollout_percent: Some(-1),
            ..FlagUpdate::default()
        };
        assert!(low.validate().unwrap_err().contains_key("rollout_percent"));
        let ok = FlagUpdate {
            description: Some(" trimmed ".into()),
            enabled: Some(true),
            rollout_percent: Some(100),
            rollout_by: None,
        };
        assert_eq!(
            ok.validate().unwrap().description.as_deref(),
            Some("trimmed")
        );
    }

    #[test]
    fn buckets_are_pinned() {
        // SHA-256("<key>:<user>"), first 8 bytes big-endian, mod 100 (as computed by Python's
        // hashlib): a change here would move users in and out of every rollout.
        assert_eq!(bucket("new-checkout", "user-1"), 48);
        assert_eq!(bucket("new-checkout", "user-2"), 59);
        assert_eq!(bucket("dark-mode", "user-1"), 19);
    }

    fn users() -> Vec<String> {
        (0..2_000).map(|n| format!("user-{n}")).collect()
    }

    fn on_at(percent: u8) -> Vec<bool> {
        users()
            .iter()
            .map(|user| evaluate("new-checkout", true, percent, None, user))
            .collect()
    }

    #[test]
    fn rollout_is_none_at_zero_everyone_at_a_hundred_and_grows_monotonically() {
        assert!(on_at(0).iter().all(|on| !on));
        assert!(on_at(100).iter().all(|on| *on));
        let mut previous = on_at(0);
        for percent in 1..=100 {
            let now = on_at(percent);
            for (was, is) in previous.iter().zip(&now) {
                assert!(!was || *is, "a user left the rollout at {percent}%");
            }
            previous = now;
        }
    }

    #[test]
    fn rollout_takes_about_its_share_and_each_flag_splits_users_its_own_way() {
        let count = |key: &str| {
            users()
                .iter()
                .filter(|user| evaluate(key, true, 30, None, user))
                .count()
        };
        let share = count("new-checkout");
        assert!((500..=700).contains(&share), "{share} of 2000 at 30%");

        let same = users()
            .iter()
            .filter(|user| bucket("new-checkout", user) == bucket("dark-mode", user))
            .count();
        assert!(same < 100, "{same} users share their bucket across flags");
    }

    #[test]
    fn a_user_keeps_their_answer() {
        for user in users().iter().take(50) {
            let first = decide("new-checkout", true, 50, None, user);
            assert_eq!(decide("new-checkout", true, 50, None, user), first);
        }
    }

    #[test]
    fn overrides_win_and_disabled_flags_are_off_for_everyone_else() {
        let user = "user-1";
        assert_eq!(
            decide("f", false, 100, Some(true), user),
            Decision::Override(true)
        );
        assert!(evaluate("f", false, 0, Some(true), user));
        assert!(!evaluate("f", true, 100, Some(false), user));
        assert_eq!(decide("f", false, 100, None, user), Decision::Disabled);
        assert!(users().iter().all(|u| !evaluate("f", false, 100, None, u)));
        assert!(matches!(
            decide("f", true, 50, None, user),
            Decision::Rollout { percent: 50, .. }
        ));
    }

    #[test]
    fn decisions_explain_themselves() {
        assert_eq!(Decision::Override(false).explain(), "overridden off");
        assert_eq!(
            Decision::Rollout {
                bucket: 7,
                percent: 10,
                by: RolloutBy::User,
            }
            .explain(),
            "bucket 7, below the rollout of 10%"
        );
        assert_eq!(
            Decision::Rollout {
                bucket: 70,
                percent: 10,
                by: RolloutBy::Org,
            }
            .explain(),
            "the organization's bucket 70, not below the rollout of 10%"
        );
        assert_eq!(
            Decision::OrgOverride(true).explain(),
            "overridden on for the organization"
        );
    }

    fn by_org(percent: u8) -> Rule<'static> {
        Rule {
            key: "team-billing",
            enabled: true,
            rollout_percent: percent,
            rollout_by: RolloutBy::Org,
        }
    }

    fn in_org<'a>(user_id: &'a str, org_id: Option<&'a str>) -> Target<'a> {
        Target { user_id, org_id }
    }

    #[test]
    fn a_rollout_by_organization_answers_alike_for_every_member() {
        let orgs: Vec<String> = (0..500).map(|n| format!("org-{n}")).collect();
        for org in &orgs {
            let answers: Vec<bool> = users()
                .iter()
                .take(20)
                .map(|user| {
                    decide_for(
                        by_org(40),
                        Overrides::default(),
                        in_org(user, Some(org.as_str())),
                    )
                })
                .map(Decision::is_on)
                .collect();
            assert!(answers.iter().all(|on| *on == answers[0]), "{org} split");
            assert_eq!(answers[0], bucket("team-billing", org) < 40);
        }
        let on = orgs
            .iter()
            .filter(|org| {
                decide_for(
                    by_org(40),
                    Overrides::default(),
                    in_org("u", Some(org.as_str())),
                )
                .is_on()
            })
            .count();
        assert!(
            (150..=250).contains(&on),
            "{on} of 500 organizations at 40%"
        );
        // Pinned like the users' buckets: a change would move organizations in and out.
        assert_eq!(bucket("team-billing", "org-1"), 54);
    }

    #[test]
    fn a_rollout_by_organization_is_off_without_one_and_grows_monotonically() {
        assert_eq!(
            decide_for(by_org(100), Overrides::default(), in_org("u", None)),
            Decision::NoOrganization
        );
        let orgs: Vec<String> = (0..300).map(|n| format!("org-{n}")).collect();
        let on_at = |percent| -> Vec<bool> {
            orgs.iter()
                .map(|org| {
                    decide_for(
                        by_org(percent),
                        Overrides::default(),
                        in_org("u", Some(org.as_str())),
                    )
                    .is_on()
                })
                .collect()
        };
        assert!(on_at(0).iter().all(|on| !on));
        assert!(on_at(100).iter().all(|on| *on));
        let mut previous = on_at(0);
        for percent in 1..=100 {
            let now = on_at(percent);
            assert!(previous.iter().zip(&now).all(|(was, is)| !was || *is));
            previous = now;
        }
    }

    #[test]
    fn user_overrides_win_over_organization_overrides_which_win_over_the_rule() {
        let target = in_org("user-1", Some("org-1"));
        let both = Overrides {
            user: Some(false),
            org: Some(true),
        };
        assert_eq!(
            decide_for(by_org(100), both, target),
            Decision::Override(false)
        );
        let org_only = Overrides {
            user: None,
            org: Some(true),
        };
        let disabled = Rule {
            enabled: false,
            ..by_org(0)
        };
        assert_eq!(
            decide_for(disabled, org_only, target),
            Decision::OrgOverride(true)
        );
        let org_off = Overrides {
            user: None,
            org: Some(false),
        };
        assert!(!decide_for(by_org(100), org_off, target).is_on());
        // A flag rolled out by user ignores the organization's bucket.
        let by_user = Rule {
            rollout_by: RolloutBy::User,
            ..by_org(50)
        };
        assert_eq!(
            decide_for(by_user, Overrides::default(), target),
            decide("team-billing", true, 50, None, "user-1")
        );
    }

    #[test]
    fn organization_ids_are_checked_for_shape() {
        assert_eq!(
            org_id_violation("0193b3c4-0000-7000-8000-000000000000"),
            None
        );
        for invalid in ["", "a b", "é", &"o".repeat(MAX_ORG_ID_LEN + 1)] {
            assert!(org_id_violation(invalid).is_some(), "{invalid:?}");
        }
    }
}
