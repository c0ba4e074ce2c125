//! The page frame (navigation, the logout form) and the small pieces every page shares:
//! timestamps, form fields with their errors, pagination links.

use maud::{DOCTYPE, Markup, html};

use super::Session;
use crate::domain::{Timestamp, ValidationErrors};
use crate::web::{PageParams, QueryParams, rfc3339};

/// The navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Shops,
    Runs,
    Shipments,
    Webhooks,
    Privacy,
}

/// A full page for a logged-in seller.
pub fn page(session: &Session, section: Section, title: &str, body: Markup) -> Markup {
    let link = |href: &str, label: &str, this: Section| {
        html! {
            li { a href=(href) aria-current=[(section == this).then_some("page")] { (label) } }
        }
    };
    frame(
        title,
        html! {
            nav aria-label="Main" {
                ul {
                    (link("/shops", "Shops", Section::Shops))
                    (link("/runs", "Sync runs", Section::Runs))
                    (link("/shipments", "Shipments", Section::Shipments))
                    (link("/webhooks", "Webhooks", Section::Webhooks))
                    (link("/privacy", "Privacy", Section::Privacy))
                }
            }
            form.logout method="post" action="/logout" {
                (csrf_field(session))
                span.who { (session.user.username) }
                button type="submit" { "Log out" }
            }
        },
        body,
    )
}

/// A page without navigation: the login form and error pages.
pub fn bare_page(title: &str, body: Markup) -> Markup {
    frame(title, html! {}, body)
}

fn frame(title: &str, header: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Simba" }
                link rel="stylesheet" href="/static/dashboard.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/shops" { "Simba" }
                    (header)
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

pub fn error_page(title: &str, message: &str) -> Markup {
    bare_page(
        title,
        html! {
            p { (message) }
            p { a href="/shops" { "Back to your shops" } }
        },
    )
}

pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A timestamp for people (UTC, to the minute) with the exact value for machines.
pub fn when(at: Timestamp) -> Markup {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    let shown = at.to_offset_date_time().format(&format).unwrap_or_default();
    html! { time datetime=(rfc3339(at)) { (shown) } }
}

pub fn maybe_when(at: Option<Timestamp>) -> Markup {
    match at {
        Some(t) => when(t),
        None => html! { "—" },
    }
}

/// A labelled input whose errors are announced with it.
pub struct Field<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub kind: &'a str,
    pub value: &'a str,
    pub required: bool,
    pub hint: Option<&'a str>,
}

impl Field<'_> {
    pub fn render(&self, errors: &ValidationErrors) -> Markup {
        let messages = errors.0.get(self.name);
        let id = format!("f-{}", self.name);
        let described = match (messages.is_some(), self.hint.is_some()) {
            (true, _) => Some(format!("{id}-error")),
            (false, true) => Some(format!("{id}-hint")),
            (false, false) => None,
        };
        // The only password fields here are shop secrets, not the seller's own password: keep
        // password managers from filling the login password in.
        let autocomplete = (self.kind == "password").then_some("new-password");
        html! {
            div.field {
                label for=(id) { (self.label) @if self.required { " (required)" } }
                input id=(id) name=(self.name) type=(self.kind) value=(self.value)
                    required[self.required] aria-invalid=[messages.map(|_| "true")]
                    aria-describedby=[described] autocomplete=[autocomplete];
                @if let Some(messages) = messages {
                    p.error id={(id) "-error"} { (self.label) " " (messages.join("; ")) }
                } @else if let Some(hint) = self.hint {
                    p.hint id={(id) "-hint"} { (hint) }
                }
            }
        }
    }
}

/// Previous / next links for a paged list; the other query parameters are kept.
pub fn pager(path: &str, query: &QueryParams, params: PageParams, count: i64) -> Markup {
    let last = ((count + params.page_size - 1) / params.page_size).max(1);
    let href = |page: i64| {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.pairs().iter().filter(|(k, _)| k != "page") {
            serializer.append_pair(k, v);
        }
        serializer.append_pair("page", &page.to_string());
        format!("{path}?{}", serializer.finish())
    };
    html! {
        nav.pager aria-label="Pages" {
            @if params.page > 1 {
                a href=(href(params.page - 1)) rel="prev" { "← Previous" }
            }
            span { "Page " (params.page.min(last)) " of " (last) " · " (count) " in all" }
            @if params.page < last {
                a href=(href(params.page + 1)) rel="next" { "Next →" }
            }
        }
    }
}

/// A run's status as a badge whose colour is not the only cue (the word is always there).
pub fn status_badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}
