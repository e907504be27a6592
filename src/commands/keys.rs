//! `saaskit keys rotate|list|remove`: the generated api's access-token signing keys, in `.env`.
//! [`crate::edit::signing_keys`] parses the file and plans the new text; this module finds the file,
//! draws the new seed, prints, and hands the change to the one writer.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::cli::{EnvFileArg, KeysCommand, KeysListArgs, KeysRemoveArgs, KeysRotateArgs};
use crate::edit::env_file;
use crate::edit::secrets::Secrets;
use crate::edit::signing_keys::{self, KeyFile, KeyInfo, PREVIOUS_KEYS, SIGNING_KEY, Seed};
use crate::model::catalog::Generator;
use crate::stage::tree::Tree;
use crate::workspace::{ENV_FILE, find_root};

const TTL_KEY: &str = "AUTH_ACCESS_TOKEN_TTL_SECS";
const DEFAULT_TTL_SECS: &str = "900";

pub fn run(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Rotate(args) => rotate(args),
        KeysCommand::List(args) => list(args),
        KeysCommand::Remove(args) => remove(args),
    }
}

/// The env file: the directory the write is relative to, its path there, and its name in messages.
struct EnvFile {
    dir: PathBuf,
    path: String,
    name: String,
}

impl EnvFile {
    /// `--env-file PATH` (relative to the current directory), or `.env` at the workspace root.
    fn locate(arg: &EnvFileArg) -> Result<EnvFile> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        match &arg.env_file {
            None => Ok(EnvFile {
                dir: find_root(&cwd)?,
                path: ENV_FILE.to_string(),
                name: ENV_FILE.to_string(),
            }),
            Some(path) if path.is_relative() => Ok(EnvFile {
                dir: cwd,
                path: path.to_string_lossy().replace('\\', "/"),
                name: path.display().to_string(),
            }),
            Some(path) => {
                let (Some(dir), Some(file)) = (path.parent(), path.file_name()) else {
                    bail!("--env-file {} does not name a file", path.display());
                };
                Ok(EnvFile {
                    dir: dir.to_path_buf(),
                    path: file.to_string_lossy().into_owned(),
                    name: path.display().to_string(),
                })
            }
        }
    }

    /// The staged tree and the file's text.
    fn read(&self) -> Result<(Tree, String)> {
        let tree = Tree::new(&self.dir);
        let Some(text) = tree.read(&self.path)? else {
            if self.name == ENV_FILE {
                bail!(
                    "no {ENV_FILE} in {}: the keys live in the workspace's {ENV_FILE}. Create it \
                     with `cp .env.example .env` (then `saaskit keys rotate` gives {SIGNING_KEY} \
                     a fresh value), or name another file with --env-file PATH",
                    self.dir.display()
                );
            }
            bail!("{} does not exist", self.name);
        };
        Ok((tree, text))
    }

    /// A key exported in the shell wins over the file for a service started from it.
    fn shadowing_note(&self) -> Option<String> {
        let shadowed: Vec<&str> = [SIGNING_KEY, PREVIOUS_KEYS]
            .into_iter()
            .filter(|key| std::env::var_os(key).is_some_and(|v| !v.is_empty()))
            .collect();
        let verb = if shadowed.len() == 1 { "is" } else { "are" };
        (!shadowed.is_empty()).then(|| {
            format!(
                "{} {verb} also set in this shell's environment, which wins over {} for a service \
                 started from it",
                shadowed.join(" and "),
                self.name
            )
        })
    }
}

fn rotate(args: KeysRotateArgs) -> Result<()> {
    let env = EnvFile::locate(&args.env)?;
    let (mut tree, text) = env.read()?;
    let file = KeyFile::parse(&env.name, &text)?;
    let rotation = file.rotate(&fresh_seed(file.signing_seed()));
    tree.write(&env.path, rotation.text);
    let notes: Vec<String> = env.shadowing_note().into_iter().collect();
    super::commit(&env.dir, &tree.plan()?, &notes, args.dry_run, true)?;

    let name = &env.name;
    let new_kid = &rotation.new_kid;
    if args.dry_run {
        println!("would rotate the signing key in {name} (a real run draws a new key of its own)");
        if let Some(old_kid) = &rotation.old_kid {
            println!("  old kid  {old_kid}  would move to {PREVIOUS_KEYS}");
        }
        return Ok(());
    }
    println!("rotated the signing key in {name}");
    match &rotation.old_kid {
        Some(old_kid) => println!(
            "  old kid  {old_kid}  now in {PREVIOUS_KEYS}: tokens it signed keep verifying"
        ),
        None => println!("  ({SIGNING_KEY} was empty: there was no old key to keep)"),
    }
    println!("  new kid  {new_kid}  {SIGNING_KEY}: signs the tokens issued from now on");
    println!("next steps:");
    println!(
        "  1. deploy every instance of the api with the new {SIGNING_KEY} and {PREVIOUS_KEYS} \
         (copy both from {name} into your secret store if the deployment reads them from one)"
    );
    if let Some(old_kid) = &rotation.old_kid {
        let ttl = match env_file::value_of(&text, TTL_KEY)
            .map(|e| e.value)
            .filter(|v| !v.is_empty())
        {
            Some(value) => format!("{value} s in {name}"),
            None => format!("{DEFAULT_TTL_SECS} s by default"),
        };
        println!(
            "  2. wait at least {TTL_KEY} ({ttl}), plus the time other services cache the JWKS"
        );
        println!("  3. saaskit keys remove {old_kid}, then deploy again");
    }
    Ok(())
}

/// A seed from the generator `.env` secrets come from (so `SAASKIT_SEED` makes it
/// deterministic), never the current one: a fixed test seed would otherwise repeat it.
fn fresh_seed(current: Option<&Seed>) -> Seed {
    let mut secrets = Secrets::from_environment();
    // Numbered candidates: a seeded generator gives each name one value, and the first may be
    // the key a previous rotation made.
    (1..)
        .map(|candidate| {
            let name = format!("AUTH_SIGNING_KEY rotation {candidate}");
            signing_keys::decode32(&secrets.generate(&name, Generator::Base64Url32))
                .expect("the generator makes 32 bytes of base64url")
        })
        .find(|seed| Some(seed) != current)
        .expect("candidates are endless")
}

#[derive(Serialize)]
struct Listing<'a> {
    file: &'a str,
    keys: Vec<KeyInfo>,
}

fn list(args: KeysListArgs) -> Result<()> {
    let env = EnvFile::locate(&args.env)?;
    let (_, text) = env.read()?;
    let file = KeyFile::parse(&env.name, &text)?;
    let keys = file.keys();
    if args.json {
        let listing = Listing {
            file: &env.name,
            keys,
        };
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(());
    }
    if file.signing_seed().is_none() {
        println!(
            "{SIGNING_KEY} is empty in {}: `saaskit keys rotate` sets a fresh one",
            env.name
        );
    }
    for key in &keys {
        println!("{}  {}", key.kid, key.role);
    }
    if let Some(note) = env.shadowing_note() {
        println!("note: {note}");
    }
    Ok(())
}

fn remove(args: KeysRemoveArgs) -> Result<()> {
    let env = EnvFile::locate(&args.env)?;
    let (mut tree, text) = env.read()?;
    let file = KeyFile::parse(&env.name, &text)?;
    tree.write(&env.path, file.remove(args.kid.trim())?);
    let notes: Vec<String> = env.shadowing_note().into_iter().collect();
    super::commit(&env.dir, &tree.plan()?, &notes, args.dry_run, true)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    println!(
        "{verb} kid {} from {PREVIOUS_KEYS} in {}",
        args.kid.trim(),
        env.name
    );
    if !args.dry_run {
        println!(
            "next step: deploy the api; from then on a token signed with that key is rejected"
        );
    }
    Ok(())
}
