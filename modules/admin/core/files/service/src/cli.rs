//! The admin binary's commands besides serving: `create-admin`, which makes the first staff
//! account (there are no default credentials), and `migrate`, which every service binary takes
//! (the db module's start-up runs it: it applies the migrations and exits).
//!
//! ```text
//! cargo run -p admin -- create-admin --email ops@example.com [--name "Ada Lovelace"]
//!     [--role admin|support] [--promote]
//! cargo run -p admin -- migrate
//! cargo run -p admin -- --help
//! ```
//!
//! The password is read from `ADMIN_PASSWORD` when it is set (for scripts), else asked for
//! twice without echo. `--promote` gives an existing account the role instead, keeping its
//! password and ending all its sessions (a role change always does), so that no token issued
//! before, to whoever registered the account, carries the new role. Parsed by hand: one command with four flags does not need an argument-parser
//! crate in every build of the service.

use std::io::IsTerminal;

use anyhow::{Context, bail};

use saaskit_core::auth::{Auth, AuthError, Role};

const USAGE: &str = "usage: admin [create-admin --email <email> [--name <full name>] \
                     [--role admin|support] [--promote] | migrate | openapi [--check|--write] \
                     | --help]\n\
                     Without a command, the admin service starts (and applies pending migrations \
                     unless DATABASE_MIGRATE_ON_START=false). `migrate` applies them and exits. \
                     `openapi` prints the service's OpenAPI document (docs/openapi.md). \
                     The password of a new account is read from ADMIN_PASSWORD, or asked for in \
                     the terminal.";

/// A command given on the command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    CreateAdmin {
        email: String,
        full_name: Option<String>,
        role: Role,
        promote: bool,
    },
}

impl Command {
    /// The command in the process's arguments; `None` to serve (or to migrate, which the db
    /// module's start-up does). `--help` prints the usage and exits, before the configuration
    /// is checked or the database reached.
    pub fn from_args() -> anyhow::Result<Option<Self>> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if matches!(
            args.first().map(String::as_str),
            Some("--help" | "-h" | "help")
        ) {
            println!("{USAGE}");
            std::process::exit(0);
        }
        parse(args.into_iter())
    }

    pub async fn run(self, auth: &Auth) -> anyhow::Result<()> {
        match self {
            Self::CreateAdmin {
                email,
                full_name,
                role,
                promote,
            } => create_admin(auth, &email, full_name.as_deref(), role, promote).await,
        }
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Option<Command>> {
    let Some(command) = args.next() else {
        return Ok(None);
    };
    match command.as_str() {
        "create-admin" => {}
        // Commands of the db module's start-up and of main.rs (`openapi`, after the routes).
        "migrate" | "openapi" => return Ok(None),
        _ => bail!("unknown command `{command}`\n{USAGE}"),
    }
    let (mut email, mut full_name, mut role, mut promote) = (None, None, Role::Admin, false);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("`{flag}` needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--email" => email = Some(value()?),
            "--name" => full_name = Some(value()?),
            "--role" => {
                let text = value()?;
                role = Role::parse(&text)
                    .filter(|role| role.is_staff())
                    .with_context(|| format!("`--role {text}`: admin or support\n{USAGE}"))?;
            }
            "--promote" => promote = true,
            "--help" | "-h" => bail!("{USAGE}"),
            other => bail!("unknown option `{other}`\n{USAGE}"),
        }
    }
    let email = email.with_context(|| format!("`--email` is required\n{USAGE}"))?;
    Ok(Some(Command::CreateAdmin {
        email,
        full_name,
        role,
        promote,
    }))
}

async fn create_admin(
    auth: &Auth,
    email: &str,
    full_name: Option<&str>,
    role: Role,
    promote: bool,
) -> anyhow::Result<()> {
    let user = if promote {
        auth.find_account(email)
            .await
            .map_err(explain)?
            .with_context(|| format!("no account has the email {email}"))?
    } else {
        let password = read_password()?;
        auth.create_account(email, password, full_name)
            .await
            .map_err(explain)?
    };
    // Ends every session of the account too: nothing signed in before keeps the new role.
    let ended = auth.set_role(&user.id, role).await.map_err(explain)?;
    println!(
        "{} is now {} (user id {}); {ended} session(s) ended: sign in again",
        user.email,
        role.as_str(),
        user.id
    );
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    if let Some(password) = std::env::var("ADMIN_PASSWORD")
        .ok()
        .filter(|password| !password.is_empty())
    {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: set ADMIN_PASSWORD, or run the command in a terminal to type it");
    }
    let password = rpassword::prompt_password("Password: ")?;
    let again = rpassword::prompt_password("Password again: ")?;
    if password != again {
        bail!("the passwords differ");
    }
    Ok(password)
}

/// An [`AuthError`] as a message for the terminal, with each invalid field.
fn explain(error: AuthError) -> anyhow::Error {
    match error {
        AuthError::Invalid(fields) => {
            let problems: Vec<String> = fields
                .iter()
                .map(|(field, problem)| format!("{field} {problem}"))
                .collect();
            anyhow::anyhow!("{}", problems.join("; "))
        }
        AuthError::EmailTaken => {
            anyhow::anyhow!("{error}: add --promote to make that account staff")
        }
        other => anyhow::Error::new(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> anyhow::Result<Option<Command>> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn no_arguments_serve_and_migrate_is_left_to_the_database_start_up() {
        assert_eq!(args("").unwrap(), None);
        assert_eq!(args("migrate").unwrap(), None);
        assert_eq!(args("openapi --check").unwrap(), None);
    }

    #[test]
    fn create_admin_takes_its_flags_either_way() {
        assert_eq!(
            args("create-admin --email=ops@example.com --role support --promote").unwrap(),
            Some(Command::CreateAdmin {
                email: "ops@example.com".into(),
                full_name: None,
                role: Role::Support,
                promote: true,
            })
        );
    }

    #[test]
    fn mistakes_are_explained() {
        let message = |line| args(line).unwrap_err().to_string();

        assert!(message("serve").contains("unknown command `serve`"));
        assert!(message("create-admin").contains("`--email` is required"));
        assert!(message("create-admin --email").contains("`--email` needs a value"));
        assert!(message("create-admin --email a@b.c --role customer").contains("admin or support"));
        assert!(message("create-admin --email a@b.c --force").contains("unknown option `--force`"));
    }
}
