//! Least privilege for live capture: once the capture handle is open, the sensor needs no
//! privilege at all. [`drop_privileges`] switches to an unprivileged user (when started as root)
//! and sheds every capability, before any other thread exists, so every thread the sensor starts
//! later inherits the reduced state.
//!
//! Started as root: the bounding set is emptied, supplementary groups cleared, then group and
//! user switched (`setgid`, `setuid`), which clears the permitted and effective sets. Started
//! unprivileged with capabilities (systemd `AmbientCapabilities=`, or file capabilities from
//! `setcap`): the ambient, inheritable, effective and permitted sets are cleared. In both cases
//! `no_new_privs` is set, so nothing executed later can regain privileges.

use caps::CapSet;
use nix::unistd::{self, Gid, Uid, User};

/// Why privileges could not be dropped. The sensor refuses to run on.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The user does not exist.
    #[error("user '{0}' does not exist")]
    NoSuchUser(String),
    /// `--user` names another user, but the sensor was not started as root.
    #[error("--user {0}: switching users needs root (the sensor runs as uid {1})")]
    NotRoot(String, u32),
    /// A system call failed.
    #[error("{0}: {1}")]
    Sys(&'static str, String),
}

/// What the process runs as after [`drop_privileges`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// User name (when switched) and ids.
    pub user: Option<String>,
    /// Real, effective and saved user id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// The user to become: `user` when given; `nobody` when started as root without one; none (stay)
/// otherwise.
pub fn target_user(user: Option<&str>, is_root: bool) -> Option<&str> {
    match (user, is_root) {
        (Some(u), _) => Some(u),
        (None, true) => Some("nobody"),
        (None, false) => None,
    }
}

fn sys<T, E: std::fmt::Display>(what: &'static str, r: Result<T, E>) -> Result<T, PrivilegeError> {
    r.map_err(|e| PrivilegeError::Sys(what, e.to_string()))
}

/// The user and group ids [`drop_privileges`] will switch to (see [`target_user`]), when it will
/// switch (started as root): files opened before the drop can be handed to them.
pub fn switch_ids(user: Option<&str>) -> Result<Option<(u32, u32)>, PrivilegeError> {
    let euid = unistd::geteuid();
    if !euid.is_root() {
        return Ok(None);
    }
    let Some(n) = target_user(user, true) else {
        return Ok(None);
    };
    let u = sys("getpwnam", User::from_name(n))?
        .ok_or_else(|| PrivilegeError::NoSuchUser(n.to_string()))?;
    Ok(Some((u.uid.as_raw(), u.gid.as_raw())))
}

/// Drops to `user` (see [`target_user`]) and sheds every capability. Call it once the capture
/// handle is open and before any thread is started.
pub fn drop_privileges(user: Option<&str>) -> Result<Dropped, PrivilegeError> {
    let euid = unistd::geteuid();
    let target = target_user(user, euid.is_root());
    let mut name = None;
    if let Some(n) = target {
        let u = sys("getpwnam", User::from_name(n))?
            .ok_or_else(|| PrivilegeError::NoSuchUser(n.to_string()))?;
        if u.uid.is_root() {
            return Err(PrivilegeError::Sys(
                "--user",
                format!("'{n}' is root; the sensor does not keep root once the capture is open"),
            ));
        }
        if euid.is_root() {
            // While still root (CAP_SETPCAP): nothing executed later can ever regain a capability.
            sys(
                "empty the capability bounding set",
                caps::clear(None, CapSet::Bounding),
            )?;
            sys("setgroups", unistd::setgroups(&[]))?;
            sys("setgid", unistd::setresgid(u.gid, u.gid, u.gid))?;
            sys("setuid", unistd::setresuid(u.uid, u.uid, u.uid))?;
            name = Some(u.name);
        } else if u.uid != euid {
            return Err(PrivilegeError::NotRoot(n.to_string(), euid.as_raw()));
        }
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        sys("clear capabilities", caps::clear(None, set))?;
    }
    sys(
        "prctl(PR_SET_NO_NEW_PRIVS)",
        nix::sys::prctl::set_no_new_privs(),
    )?;
    if Uid::current().is_root() || Uid::effective().is_root() {
        return Err(PrivilegeError::Sys("setuid", "still root".into()));
    }
    Ok(Dropped {
        user: name,
        uid: Uid::current().as_raw(),
        gid: Gid::current().as_raw(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_user_defaults_to_nobody_for_root_only() {
        assert_eq!(target_user(None, true), Some("nobody"));
        assert_eq!(target_user(None, false), None);
        assert_eq!(target_user(Some("picket"), false), Some("picket"));
        assert_eq!(target_user(Some("picket"), true), Some("picket"));
    }
}
