//! Storage of people: console users, their project memberships and sign-in sessions.
//!
//! Passwords are stored as argon2id PHC strings and session secrets as their SHA-256,
//! never in the clear. Times are compared in Rust, not in SQL, so both backends agree
//! whatever their timestamp representation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{Id, Role};

/// A console user as listed: never the password hash.
#[derive(Clone, Debug, PartialEq)]
pub struct UserRecord {
    pub id: Id,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

/// What sign-in needs to know about a user.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: UserRecord,
    pub password_hash: String,
    /// Wrong passwords in a row since the last good one or the last lock.
    pub failed_signins: i64,
    pub locked_until: Option<DateTime<Utc>>,
}

/// A project member.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub project_id: Id,
    pub user: UserRecord,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// A signed-in console session.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the cookie's secret.
    pub id: String,
    pub user: UserRecord,
    /// Must accompany every unsafe request of this session (`X-CSRF-Token`).
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// People's use cases; every [`super::Store`] implements it.
#[async_trait]
pub trait PeopleStore: Send + Sync + 'static {
    /// Adds a user (`Conflict` when the e-mail address is taken).
    async fn create_user(&self, user: &UserRecord, password_hash: &str) -> StoreResult<()>;
    async fn get_user(&self, id: Id) -> StoreResult<UserRecord>;
    async fn list_users(&self, after: Option<Id>, limit: i64) -> StoreResult<Vec<UserRecord>>;
    /// The user signing in as `email` (already lower-cased), if any.
    async fn find_credentials(&self, email: &str) -> StoreResult<Option<Credentials>>;
    /// Counts a wrong password; the `limit`-th in a row locks the account until
    /// `lock_until` and starts the count again. Returns whether it locked.
    async fn record_signin_failure(
        &self,
        user_id: Id,
        limit: i64,
        lock_until: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// A good password: the count of wrong ones starts again.
    async fn reset_signin_failures(&self, user_id: Id) -> StoreResult<()>;

    /// Adds a member (`Conflict` when the user already is one).
    async fn add_member(
        &self,
        project_id: Id,
        user_id: Id,
        role: Role,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Changes a member's role (`NotFound` when the user is not a member).
    async fn set_member_role(&self, project_id: Id, user_id: Id, role: Role) -> StoreResult<()>;
    /// Removes a member (`NotFound` when the user is not a member).
    async fn remove_member(&self, project_id: Id, user_id: Id) -> StoreResult<()>;
    async fn list_members(&self, project_id: Id) -> StoreResult<Vec<Member>>;
    /// Every project the user belongs to, with the role there.
    async fn memberships(&self, user_id: Id) -> StoreResult<Vec<(Id, Role)>>;

    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// The session whose secret hashes to `id`, expired or not.
    async fn find_session(&self, id: &str) -> StoreResult<Option<SessionRecord>>;
    /// Ends a session; ending one that does not exist is not an error.
    async fn delete_session(&self, id: &str) -> StoreResult<()>;
    /// Deletes every session that expired before `now`, like [`Self::delete_session`];
    /// answers how many.
    async fn purge_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub id: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = super::StoreError;

    fn try_from(row: UserRow) -> Result<Self, Self::Error> {
        Ok(UserRecord {
            id: super::sql::parse("user id", &row.id)?,
            email: row.email,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct CredentialsRow {
    pub id: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub password_hash: String,
    pub failed_signins: i64,
    pub locked_until: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
pub(super) struct MemberRow {
    pub project_id: String,
    pub user_id: String,
    pub email: String,
    pub user_created_at: DateTime<Utc>,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<MemberRow> for Member {
    type Error = super::StoreError;

    fn try_from(row: MemberRow) -> Result<Self, Self::Error> {
        Ok(Member {
            project_id: super::sql::parse("project id", &row.project_id)?,
            user: UserRecord {
                id: super::sql::parse("user id", &row.user_id)?,
                email: row.email,
                created_at: row.user_created_at,
            },
            role: super::sql::parse("role", &row.role)?,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub user_created_at: DateTime<Utc>,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Implements [`PeopleStore`] for a backend struct with a `pool` field.
macro_rules! people_sql_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::people::PeopleStore for $store {
            async fn create_user(
                &self,
                user: &$crate::store::people::UserRecord,
                password_hash: &str,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO users (id, email, password_hash, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(user.id.to_string())
                .bind(&user.email)
                .bind(password_hash)
                .bind(user.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_user(
                &self,
                id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<$crate::store::people::UserRecord> {
                let row: $crate::store::people::UserRow =
                    sqlx::query_as("SELECT id, email, created_at FROM users WHERE id = $1")
                        .bind(id.to_string())
                        .fetch_one(&self.pool)
                        .await?;
                row.try_into()
            }

            async fn list_users(
                &self,
                after: Option<$crate::domain::Id>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::people::UserRecord>> {
                let rows: Vec<$crate::store::people::UserRow> = sqlx::query_as(
                    "SELECT id, email, created_at FROM users WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after.map(|id| id.to_string()).unwrap_or_default())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                $crate::store::sql::convert(rows)
            }

            async fn find_credentials(
                &self,
                email: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::people::Credentials>> {
                let row: Option<$crate::store::people::CredentialsRow> = sqlx::query_as(
                    "SELECT id, email, created_at, password_hash, failed_signins, locked_until \
                     FROM users WHERE email = $1",
                )
                .bind(email)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| {
                    Ok($crate::store::people::Credentials {
                        user: $crate::store::people::UserRecord {
                            id: $crate::store::sql::parse("user id", &row.id)?,
                            email: row.email,
                            created_at: row.created_at,
                        },
                        password_hash: row.password_hash,
                        failed_signins: row.failed_signins,
                        locked_until: row.locked_until,
                    })
                })
                .transpose()
            }

            async fn record_signin_failure(
                &self,
                user_id: $crate::domain::Id,
                limit: i64,
                lock_until: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<bool> {
                // One statement: concurrent wrong passwords each count once.
                let (locked,): (bool,) = sqlx::query_as(
                    "UPDATE users SET \
                       failed_signins = CASE WHEN failed_signins + 1 >= $2 THEN 0 \
                                             ELSE failed_signins + 1 END, \
                       locked_until = CASE WHEN failed_signins + 1 >= $2 THEN $3 \
                                           ELSE locked_until END \
                     WHERE id = $1 \
                     RETURNING failed_signins = 0",
                )
                .bind(user_id.to_string())
                .bind(limit)
                .bind(lock_until)
                .fetch_one(&self.pool)
                .await?;
                Ok(locked)
            }

            async fn reset_signin_failures(
                &self,
                user_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE users SET failed_signins = 0 WHERE id = $1")
                    .bind(user_id.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn add_member(
                &self,
                project_id: $crate::domain::Id,
                user_id: $crate::domain::Id,
                role: $crate::domain::Role,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO memberships (project_id, user_id, role, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(project_id.to_string())
                .bind(user_id.to_string())
                .bind(role.as_str())
                .bind(at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn set_member_role(
                &self,
                project_id: $crate::domain::Id,
                user_id: $crate::domain::Id,
                role: $crate::domain::Role,
            ) -> $crate::store::StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE memberships SET role = $3 WHERE project_id = $1 AND user_id = $2",
                )
                .bind(project_id.to_string())
                .bind(user_id.to_string())
                .bind(role.as_str())
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                Ok(())
            }

            async fn remove_member(
                &self,
                project_id: $crate::domain::Id,
                user_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<()> {
                let done =
                    sqlx::query("DELETE FROM memberships WHERE project_id = $1 AND user_id = $2")
                        .bind(project_id.to_string())
                        .bind(user_id.to_string())
                        .execute(&self.pool)
                        .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                Ok(())
            }

            async fn list_members(
                &self,
                project_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<Vec<$crate::store::people::Member>> {
                let rows: Vec<$crate::store::people::MemberRow> = sqlx::query_as(
                    "SELECT m.project_id, m.user_id, u.email, u.created_at AS user_created_at, \
                            m.role, m.created_at \
                     FROM memberships m JOIN users u ON u.id = m.user_id \
                     WHERE m.project_id = $1 ORDER BY u.email",
                )
                .bind(project_id.to_string())
                .fetch_all(&self.pool)
                .await?;
                $crate::store::sql::convert(rows)
            }

            async fn memberships(
                &self,
                user_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<Vec<($crate::domain::Id, $crate::domain::Role)>> {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT project_id, role FROM memberships WHERE user_id = $1 \
                     ORDER BY project_id",
                )
                .bind(user_id.to_string())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(project, role)| {
                        Ok((
                            $crate::store::sql::parse("project id", &project)?,
                            $crate::store::sql::parse("role", &role)?,
                        ))
                    })
                    .collect()
            }

            async fn create_session(
                &self,
                session: &$crate::store::people::SessionRecord,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO console_sessions \
                       (id, user_id, csrf_token, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&session.id)
                .bind(session.user.id.to_string())
                .bind(&session.csrf_token)
                .bind(session.created_at)
                .bind(session.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn find_session(
                &self,
                id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::people::SessionRecord>> {
                let row: Option<$crate::store::people::SessionRow> = sqlx::query_as(
                    "SELECT s.id, s.user_id, u.email, u.created_at AS user_created_at, \
                            s.csrf_token, s.created_at, s.expires_at \
                     FROM console_sessions s JOIN users u ON u.id = s.user_id \
                     WHERE s.id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| {
                    Ok($crate::store::people::SessionRecord {
                        id: row.id,
                        user: $crate::store::people::UserRecord {
                            id: $crate::store::sql::parse("user id", &row.user_id)?,
                            email: row.email,
                            created_at: row.user_created_at,
                        },
                        csrf_token: row.csrf_token,
                        created_at: row.created_at,
                        expires_at: row.expires_at,
                    })
                })
                .transpose()
            }

            async fn delete_session(&self, id: &str) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                // The app keys it made go first, each a new revision of its deployment
                // so the broker stops accepting it.
                let bound: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT k.app_id, k.deployment_id, d.project_id \
                     FROM deployment_app_keys k JOIN deployments d ON d.id = k.deployment_id \
                     WHERE k.console_session = $1",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM deployment_app_keys WHERE console_session = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for (app_id, deployment_id, project_id) in bound {
                    let app_id: $crate::domain::Id =
                        $crate::store::sql::parse("app id", &app_id)?;
                    $crate::store::security::bump_generation!(
                        tx,
                        project_id,
                        deployment_id,
                        $crate::store::revision::app_key(app_id)
                    );
                }
                sqlx::query("DELETE FROM console_sessions WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn purge_sessions(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let sessions: Vec<(String, chrono::DateTime<chrono::Utc>)> =
                    sqlx::query_as("SELECT id, expires_at FROM console_sessions")
                        .fetch_all(&self.pool)
                        .await?;
                let mut purged = 0;
                for (id, expires_at) in sessions {
                    if expires_at <= now {
                        $crate::store::people::PeopleStore::delete_session(self, &id).await?;
                        purged += 1;
                    }
                }
                Ok(purged)
            }
        }
    };
}

pub(super) use people_sql_store;
