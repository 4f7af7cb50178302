//! Go's `text/template`: lexer, parser and executor, with the template set Helm builds (every
//! file of the chart and its subcharts parsed into one namespace, `tpl` working on a copy).

pub mod ast;
pub mod exec;
pub mod lex;
pub mod parse;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

pub use exec::Exec;
pub use parse::Tree;

/// Named templates; a `tpl` call works on a child set that sees its parent's templates.
#[derive(Default)]
pub struct Set {
    parent: Option<Rc<Set>>,
    own: RefCell<HashMap<Rc<str>, Rc<Tree>>>,
}

impl Set {
    /// An empty root set.
    pub fn root() -> Rc<Set> {
        Rc::new(Set::default())
    }

    /// A set that adds to (and may shadow) `parent` without changing it, as Go's `Clone`.
    pub fn child(parent: &Rc<Set>) -> Rc<Set> {
        Rc::new(Set { parent: Some(parent.clone()), own: RefCell::new(HashMap::new()) })
    }

    /// The template named `name`.
    pub fn lookup(&self, name: &str) -> Option<Rc<Tree>> {
        if let Some(t) = self.own.borrow().get(name) {
            return Some(t.clone());
        }
        self.parent.as_ref().and_then(|p| p.lookup(name))
    }

    /// Adds parsed trees as Go's `AddParseTree` does: an empty definition never replaces an
    /// existing one; anything else replaces it.
    pub fn add(&self, trees: &[Rc<Tree>]) {
        for t in trees {
            if parse::is_empty(t) && self.lookup(&t.name).is_some() {
                continue;
            }
            self.own.borrow_mut().insert(t.name.clone(), t.clone());
        }
    }
}
