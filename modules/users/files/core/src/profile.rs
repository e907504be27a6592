//! User profiles: the fields of an account its owner edits (name, display name, time zone,
//! locale), and the rules they follow.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::auth::full_name_violation;
use crate::db::Database;
use crate::error::FieldErrors;

/// The longest `display_name` accepted, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// A profile as `GET /api/users/profile` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Profile {
    pub id: String,
    pub email: String,
    pub full_name: Option<String>,
    pub display_name: Option<String>,
    pub timezone: Option<String>,
    pub locale: Option<String>,
}

/// The editable fields, as a client sends them. A field left out is cleared.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"full_name": "Ada Lovelace", "display_name": "Ada",
    "timezone": "Europe/London", "locale": "en-GB"}))]
pub struct ProfileUpdate {
    pub full_name: Option<String>,
    pub display_name: Option<String>,
    pub timezone: Option<String>,
    pub locale: Option<String>,
}

impl ProfileUpdate {
    /// The update with text trimmed (empty becomes `None`) and the locale in canonical case, or
    /// what is wrong with each invalid field.
    pub fn validate(self) -> Result<Self, FieldErrors> {
        let clean = |value: Option<String>| {
            value
                .map(|text| text.trim().to_owned())
                .filter(|text| !text.is_empty())
        };
        let update = Self {
            full_name: clean(self.full_name),
            display_name: clean(self.display_name),
            timezone: clean(self.timezone),
            locale: clean(self.locale).map(|locale| canonical_locale(&locale)),
        };
        let mut fields = FieldErrors::new();
        let mut check = |field: &str, problem: Option<String>| {
            if let Some(problem) = problem {
                fields.insert(field.to_owned(), problem);
            }
        };
        check(
            "full_name",
            update.full_name.as_deref().and_then(full_name_violation),
        );
        check(
            "display_name",
            update
                .display_name
                .as_deref()
                .filter(|name| name.chars().count() > MAX_DISPLAY_NAME_CHARS)
                .map(|_| format!("must be at most {MAX_DISPLAY_NAME_CHARS} characters long")),
        );
        check(
            "timezone",
            update
                .timezone
                .as_deref()
                .filter(|zone| !is_time_zone(zone))
                .map(|_| "is not an IANA time zone such as Europe/Paris or UTC".to_owned()),
        );
        check(
            "locale",
            update
                .locale
                .as_deref()
                .filter(|locale| !is_locale(locale))
                .map(|_| "is not a language tag such as en, fr-CA or zh-Hant-TW".to_owned()),
        );
        if fields.is_empty() {
            Ok(update)
        } else {
            Err(fields)
        }
    }
}

/// Why a profile could not be read, in the domain's terms; the service edge
/// (`crate::error::profile`) says how it is answered over HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No account has this id (any more).
    #[error("user not found")]
    UnknownUser,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The profile of `user_id`.
pub async fn load(db: &Database, user_id: &str) -> Result<Profile, ProfileError> {
    let row = sqlx::query(
        "SELECT id, email, full_name, display_name, timezone, locale FROM users WHERE id = $1",
    )
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?
    .ok_or(ProfileError::UnknownUser)?;
    Ok(Profile {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        full_name: row.try_get("full_name")?,
        display_name: row.try_get("display_name")?,
        timezone: row.try_get("timezone")?,
        locale: row.try_get("locale")?,
    })
}

/// Saves a validated `update` as the profile of `user_id`.
pub async fn save(
    db: &Database,
    user_id: &str,
    update: &ProfileUpdate,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE users SET full_name = $1, display_name = $2, timezone = $3, locale = $4, \
         updated_at = $5 WHERE id = $6",
    )
    .bind(update.full_name.as_deref())
    .bind(update.display_name.as_deref())
    .bind(update.timezone.as_deref())
    .bind(update.locale.as_deref())
    .bind(now)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Whether `zone` is a name of the IANA Time Zone Database (as of the list's tzdata version).
pub fn is_time_zone(zone: &str) -> bool {
    static ZONES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
        include_str!("profile/timezones.txt")
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect()
    });
    ZONES.contains(zone)
}

/// Whether `tag` is a BCP 47 language tag of the common shape: a language (2 or 3 letters),
/// then optionally a script (4 letters), a region (2 letters or 3 digits) and variants.
pub fn is_locale(tag: &str) -> bool {
    let mut subtags = tag.split('-').peekable();
    let Some(language) = subtags.next() else {
        return false;
    };
    if !(2..=3).contains(&language.len()) || !language.chars().all(|c| c.is_ascii_alphabetic()) {
        return false;
    }
    if subtags.peek().is_some_and(|s| is_script(s)) {
        subtags.next();
    }
    if subtags.peek().is_some_and(|s| is_region(s)) {
        subtags.next();
    }
    subtags.all(is_variant)
}

fn is_script(subtag: &str) -> bool {
    subtag.len() == 4 && subtag.chars().all(|c| c.is_ascii_alphabetic())
}

fn is_region(subtag: &str) -> bool {
    (subtag.len() == 2 && subtag.chars().all(|c| c.is_ascii_alphabetic()))
        || (subtag.len() == 3 && subtag.chars().all(|c| c.is_ascii_digit()))
}

fn is_variant(subtag: &str) -> bool {
    let alphanumeric = subtag.chars().all(|c| c.is_ascii_alphanumeric());
    alphanumeric
        && ((5..=8).contains(&subtag.len())
            || (subtag.len() == 4 && subtag.starts_with(|c: char| c.is_ascii_digit())))
}

/// `tag` in the case BCP 47 recommends: `zh-Hant-TW`, `en-US`, `fr`.
fn canonical_locale(tag: &str) -> String {
    tag.split('-')
        .enumerate()
        .map(|(position, subtag)| {
            if position == 0 {
                subtag.to_ascii_lowercase()
            } else if is_script(subtag) {
                let (first, rest) = subtag.split_at(1);
                first.to_ascii_uppercase() + &rest.to_ascii_lowercase()
            } else if subtag.len() == 2 {
                subtag.to_ascii_uppercase()
            } else {
                subtag.to_ascii_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::MAX_FULL_NAME_CHARS;

    #[test]
    fn knows_iana_time_zones() {
        for zone in [
            "UTC",
            "Europe/Paris",
            "America/Argentina/Buenos_Aires",
            "Asia/Kolkata",
        ] {
            assert!(is_time_zone(zone), "{zone}");
        }
        for zone in ["", "Mars/Olympus_Mons", "europe/paris", "+02:00"] {
            assert!(!is_time_zone(zone), "{zone}");
        }
    }

    #[test]
    fn knows_language_tags() {
        for tag in ["en", "fr-CA", "zh-Hant-TW", "es-419", "sl-rozaj", "de-1996"] {
            assert!(is_locale(tag), "{tag}");
        }
        for tag in ["", "e", "english", "en_US", "en-", "fr-CA-x"] {
            assert!(!is_locale(tag), "{tag}");
        }
    }

    #[test]
    fn cleans_and_validates_updates() {
        let update = ProfileUpdate {
            full_name: Some("  Ada Lovelace ".into()),
            display_name: Some("   ".into()),
            timezone: Some("Europe/London".into()),
            locale: Some("EN-gb".into()),
        };

        let valid = update.validate().unwrap();

        assert_eq!(valid.full_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(valid.display_name, None);
        assert_eq!(valid.locale.as_deref(), Some("en-GB"));
    }

    #[test]
    fn names_each_invalid_field() {
        let update = ProfileUpdate {
            full_name: Some("x".repeat(MAX_FULL_NAME_CHARS + 1)),
            display_name: Some("y".repeat(MAX_DISPLAY_NAME_CHARS + 1)),
            timezone: Some("Nowhere/Land".into()),
            locale: Some("english".into()),
        };

        let fields = update.validate().unwrap_err();

        let names: Vec<_> = fields.keys().map(String::as_str).collect();
        assert_eq!(names, ["display_name", "full_name", "locale", "timezone"]);
    }
}
