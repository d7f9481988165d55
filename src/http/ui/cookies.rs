//! The two cookies of the dashboard, read and written by hand (actix-web's cookie
//! feature is off): the session cookie, and the login form's double-submit token.
//! Both HttpOnly and SameSite=Strict; `Secure` when configured.

/// The session id (see `sessions.rs`); the browser sends it to `/ui` only.
pub(crate) const SESSION: &str = "ahub_session";
/// The login form's CSRF token, also in the form: a cross-site page can make a
/// browser post a form but can neither read nor set this cookie.
pub(crate) const LOGIN: &str = "ahub_login";

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn read<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name && !v.is_empty()).then_some(v)
    })
}

/// A `Set-Cookie` value for `name=value` under `path`, living `max_age_secs`.
pub(crate) fn set(name: &str, value: &str, path: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// A `Set-Cookie` value that removes cookie `name` of `path`.
pub(crate) fn clear(name: &str, path: &str, secure: bool) -> String {
    set(name, "", path, 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_cookie_among_others() {
        let h = Some("a=1; ahub_session=abc ;b=2");
        assert_eq!(read(h, SESSION), Some("abc"));
        assert_eq!(read(h, "b"), Some("2"));
        assert_eq!(read(h, LOGIN), None);
        assert_eq!(read(Some("ahub_session="), SESSION), None);
        assert_eq!(read(None, SESSION), None);
        assert_eq!(read(Some("xahub_session=1"), SESSION), None);
    }

    #[test]
    fn writes_strict_http_only_cookies() {
        assert_eq!(
            set(SESSION, "v", "/ui", 60, false),
            "ahub_session=v; Path=/ui; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        assert!(set(SESSION, "v", "/ui", 60, true).ends_with("; Secure"));
        assert!(
            clear(LOGIN, "/ui/login", false).starts_with("ahub_login=; Path=/ui/login; Max-Age=0")
        );
    }
}
