//! The plans customers can subscribe to, read at start-up from a JSON file
//! (`BILLING_PLANS_FILE`), so that prices change without a rebuild. Each plan names the Stripe
//! price its checkout uses; subscriptions are matched to plans by that price.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Env;

/// A plan as `GET /api/billing/plans` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// A stable id of your choice, e.g. `pro`.
    pub id: String,
    pub name: String,
    /// The Stripe price (`price_...`).
    pub price_id: String,
    /// In the currency's smallest unit (cents).
    pub amount: i64,
    /// ISO 4217, lower case, as Stripe writes it (`usd`).
    pub currency: String,
    /// `day`, `week`, `month` or `year`.
    pub interval: String,
    #[serde(default)]
    pub features: Vec<String>,
}

/// The configured plans.
#[derive(Debug, Clone, Default)]
pub struct Plans(Vec<Plan>);

impl Plans {
    /// Reads and checks the file named by `BILLING_PLANS_FILE`.
    pub fn from_env(env: &mut Env) -> Self {
        const KEY: &str = "BILLING_PLANS_FILE";
        let Some(path): Option<String> = env.required(KEY) else {
            return Self::default();
        };
        match Self::load(Path::new(&path)) {
            Ok(plans) => plans,
            Err(problem) => {
                env.record(KEY, format!("names {path}, which {problem}"));
                Self::default()
            }
        }
    }

    fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|error| format!("cannot be read: {error}"))?;
        let plans: Vec<Plan> = serde_json::from_str(&text)
            .map_err(|error| format!("is not a list of plans: {error}"))?;
        Self::checked(plans)
    }

    fn checked(plans: Vec<Plan>) -> Result<Self, String> {
        for (index, plan) in plans.iter().enumerate() {
            let problem = if plan.id.is_empty() || plan.name.is_empty() {
                Some("needs an id and a name")
            } else if !plan.price_id.starts_with("price_") {
                Some("needs a Stripe price id (price_...)")
            } else if plan.amount < 0 {
                Some("has a negative amount")
            } else if !["day", "week", "month", "year"].contains(&plan.interval.as_str()) {
                Some("needs an interval of day, week, month or year")
            } else if plans[..index]
                .iter()
                .any(|other| other.id == plan.id || other.price_id == plan.price_id)
            {
                Some("repeats the id or price of an earlier plan")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(format!(
                    "has a plan #{} (`{}`) that {problem}",
                    index + 1,
                    plan.id
                ));
            }
        }
        Ok(Self(plans))
    }

    pub fn all(&self) -> &[Plan] {
        &self.0
    }

    /// The plan whose price is `price_id`.
    pub fn by_price(&self, price_id: &str) -> Option<&Plan> {
        self.0.iter().find(|plan| plan.price_id == price_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: &str, price_id: &str) -> Plan {
        Plan {
            id: id.into(),
            name: id.to_uppercase(),
            price_id: price_id.into(),
            amount: 900,
            currency: "usd".into(),
            interval: "month".into(),
            features: Vec::new(),
        }
    }

    #[test]
    fn finds_plans_by_price() {
        let plans =
            Plans::checked(vec![plan("starter", "price_a"), plan("pro", "price_b")]).unwrap();

        assert_eq!(plans.by_price("price_b").unwrap().id, "pro");
        assert!(plans.by_price("price_c").is_none());
    }

    #[test]
    fn refuses_duplicates_and_bad_prices() {
        let duplicate = Plans::checked(vec![plan("a", "price_a"), plan("a", "price_b")]);
        let bad_price = Plans::checked(vec![plan("a", "prod_a")]);

        assert!(duplicate.unwrap_err().contains("#2 (`a`)"));
        assert!(bad_price.unwrap_err().contains("price_"));
    }

    #[test]
    fn a_missing_file_is_reported_with_its_path() {
        let mut env = Env::from_vars([("BILLING_PLANS_FILE", "/nonexistent/plans.json")]);
        Plans::from_env(&mut env);

        let message = env.finish().unwrap_err().to_string();

        assert!(message.contains("/nonexistent/plans.json"), "{message}");
    }
}
