//! The inner-service accessors every layer's service has.

/// Defines `get_ref`, `get_mut` and `into_inner` on a middleware service
/// whose wrapped service is its `inner` field of type `S` — the accessors
/// tower-http's services have, written once.
///
/// ```
/// pub struct Audited<S> {
///     inner: S,
/// }
///
/// impl<S> Audited<S> {
///     kailash_core::inner_service_accessors!();
/// }
///
/// let mut svc = Audited { inner: 7 };
/// *svc.get_mut() += 1;
/// assert_eq!(*svc.get_ref(), 8);
/// assert_eq!(svc.into_inner(), 8);
/// ```
#[macro_export]
macro_rules! inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes this service, returning the inner one.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
