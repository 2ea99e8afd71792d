//! `databases: all`: the envs of a project that backs up every database of its server, from
//! the server's list of databases and the env folders this host already has.

use std::path::Path;

use crate::config::{Config, Project};
use crate::postgres::Pg;

/// Fills in the envs of every `databases: all` project (only `project` when given): one per
/// connectable database on the server, plus the envs this host has backups of (marked gone when
/// the server no longer has them). A server that cannot be asked leaves the local envs, with why.
pub fn every_database(cfg: &mut Config, project: Option<&str>) {
    let names: Vec<String> = cfg
        .projects
        .values()
        .filter(|p| p.every_database.is_some() && project.is_none_or(|n| n == p.name))
        .map(|p| p.name.clone())
        .collect();
    for name in names {
        let on_server = server_databases(&cfg.projects[&name], cfg.pg_bindir.as_deref());
        let local = local_envs(&cfg.backup_root.join(&name));
        if let Some(p) = cfg.projects.get_mut(&name) {
            p.adopt_databases(on_server, &local);
        }
    }
}

/// The databases the project's server lets its role connect to.
fn server_databases(p: &Project, bindir: Option<&Path>) -> Result<Vec<String>, String> {
    let ask = || -> crate::error::Result<Vec<String>> {
        let pg = Pg::connect_admin(&p.connection, bindir, None)?;
        let mut s = pg.admin_session()?;
        let dbs = s.connectable_databases()?;
        s.close()?;
        Ok(dbs)
    };
    ask().map_err(|e| format!("could not list the databases of project {}'s server: {e}", p.name))
}

/// The env folders under a project's folder that hold a `database` folder.
fn local_envs(project_dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(project_dir) else { return Vec::new() };
    let mut out: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("database").is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| crate::names::check_component(n).is_ok())
        .collect();
    out.sort();
    out
}
