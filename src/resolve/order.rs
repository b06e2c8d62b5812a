//! The plan's order: dependencies before their dependents, cycles named, platforms checked.

use std::collections::{BTreeMap, BTreeSet};

use semver::Version;

use super::{Request, Resolution, ResolveError, Step};
use crate::formula::Formula;
use crate::platform::Platform;

/// Depth-first, dependencies first; a back edge is a cycle.
/// Long: an explicit depth-first stack (a chain thousands deep must not exhaust the thread's), with
/// cycle detection, kept in one function so the stack and the visit state are not passed around.
pub(super) fn order(
    requests: &[Request],
    formulae: &BTreeMap<String, Formula>,
    selected: &BTreeMap<String, Version>,
    host: &Platform,
) -> Result<Resolution, ResolveError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    struct Walk<'a> {
        formulae: &'a BTreeMap<String, Formula>,
        selected: &'a BTreeMap<String, Version>,
        marks: BTreeMap<String, Mark>,
        stack: Vec<String>,
        steps: Vec<Step>,
        requested: BTreeSet<String>,
    }
    impl Walk<'_> {
        /// Depth first, dependencies before their dependents, with a stack of its own (a chain
        /// thousands deep must not exhaust the thread's).
        fn visit(&mut self, root: &str) -> Result<(), ResolveError> {
            // (name, its dependencies, how many of them are done)
            let mut frames: Vec<(String, Vec<String>, usize)> = Vec::new();
            self.enter(root, &mut frames)?;
            while let Some((name, deps, next)) = frames.last_mut() {
                if let Some(dep) = deps.get(*next).cloned() {
                    *next += 1;
                    self.enter(&dep, &mut frames)?;
                    continue;
                }
                let name = std::mem::take(name);
                frames.pop();
                self.stack.pop();
                self.marks.insert(name.clone(), Mark::Done);
                let formula = &self.formulae[&name];
                self.steps.push(Step {
                    formula: formula.clone(),
                    version: self.selected[&name].clone(),
                    on_request: self.requested.contains(&name),
                });
            }
            Ok(())
        }

        /// Starts on `name` unless it is done; a name already being visited is a cycle.
        fn enter(
            &mut self,
            name: &str,
            frames: &mut Vec<(String, Vec<String>, usize)>,
        ) -> Result<(), ResolveError> {
            match self.marks.get(name) {
                Some(Mark::Done) => return Ok(()),
                Some(Mark::Visiting) => {
                    let start = self.stack.iter().position(|n| n == name).unwrap_or(0);
                    let mut cycle = self.stack[start..].to_vec();
                    cycle.push(name.to_owned());
                    return Err(ResolveError::Cycle(cycle.join(" -> ")));
                }
                None => {}
            }
            self.marks.insert(name.to_owned(), Mark::Visiting);
            self.stack.push(name.to_owned());
            let version = &self.selected[name];
            let deps = self.formulae[name].versions[version]
                .depends_on
                .keys()
                .cloned()
                .collect();
            frames.push((name.to_owned(), deps, 0));
            Ok(())
        }
    }
    let mut walk = Walk {
        formulae,
        selected,
        marks: BTreeMap::new(),
        stack: Vec::new(),
        steps: Vec::new(),
        requested: requests.iter().map(|r| r.name.clone()).collect(),
    };
    for r in requests {
        walk.visit(&r.name)?;
    }
    for step in &walk.steps {
        if let Some(allowed) = &step.formula.platforms
            && !allowed.iter().any(|p| host.matches_pattern(p))
        {
            return Err(ResolveError::Platform {
                name: step.formula.name.clone(),
                host: host.to_string(),
                allowed: allowed.join(", "),
            });
        }
    }
    Ok(Resolution { steps: walk.steps })
}
