//! The two AWS KMS calls client-side encryption needs, `GenerateDataKey` and
//! `Decrypt`, over KMS's JSON protocol (`POST /`, `X-Amz-Target: TrentService.*`).
//!
//! No AWS SDK: the requests are SigV4-signed with `object_store`'s `AwsAuthorizer`
//! (the signer of every S3 request the broker makes) and sent with its HTTP client,
//! and the credentials are those the S3 backend resolves (the broker's
//! `remote.storage.s3.*` keys, else the environment, web identity, ECS or the EC2
//! instance profile). That keeps `aws-sdk-kms` and the smithy runtime out of the
//! build for two small JSON calls.
//!
//! Every call names the object in its encryption context (`strata:object` = the
//! object's path, which holds the topic id, partition and base offset), so KMS opens
//! a blob only for the object it was made for: a header copied onto another object
//! fails with `InvalidCiphertextException`.

use std::time::Duration;

use base64::Engine as _;
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{ClientOptions, HttpClient, HttpConnector, ReqwestConnector};
use zeroize::Zeroizing;

/// One KMS request's time limit (KMS answers in milliseconds; a hung call would stall
/// every read of the object behind it).
const TIMEOUT: Duration = Duration::from_secs(10);
/// The encryption context key that names the object.
pub const CONTEXT_KEY: &str = "strata:object";

/// Where and as whom KMS is called.
#[derive(Clone)]
pub struct KmsClient {
    http: HttpClient,
    endpoint: String,
    region: String,
    credentials: AwsCredentialProvider,
}

impl std::fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsClient")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish()
    }
}

/// Why a KMS call failed: KMS's error type (`AccessDeniedException`,
/// `DisabledException`, `IncorrectKeyException`, `InvalidCiphertextException`,
/// `NotFoundException`, `KMSInvalidStateException`, ...) or a transport failure, and
/// KMS's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsError {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for KmsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

fn transport(message: String) -> KmsError {
    KmsError {
        code: "RequestFailed".into(),
        message,
    }
}

/// A new data key: its plaintext, the blob to store, and the ARN of the KMS key.
pub struct NewDataKey {
    pub plaintext: Zeroizing<[u8; 32]>,
    pub blob: Vec<u8>,
    pub arn: String,
}

impl KmsClient {
    /// A client of the KMS at `endpoint` (`https://kms.<region>.amazonaws.com` on AWS).
    pub fn new(
        endpoint: String,
        region: String,
        credentials: AwsCredentialProvider,
    ) -> object_store::Result<KmsClient> {
        let options = ClientOptions::new()
            .with_allow_http(endpoint.starts_with("http://"))
            .with_timeout(TIMEOUT);
        let http = ReqwestConnector::default().connect(&options)?;
        Ok(KmsClient {
            http,
            endpoint,
            region,
            credentials,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `GenerateDataKey` (AES_256) under `key_id` (id, ARN or alias) for the object at
    /// `object`.
    pub async fn generate_data_key(
        &self,
        key_id: &str,
        object: &str,
    ) -> Result<NewDataKey, KmsError> {
        let body = serde_json::json!({
            "KeyId": key_id,
            "KeySpec": "AES_256",
            "EncryptionContext": { CONTEXT_KEY: object },
        });
        let v = self.call("GenerateDataKey", body).await?;
        let plaintext = plaintext_of(&v)?;
        let blob = b64_field(&v, "CiphertextBlob")?;
        let arn = v
            .get("KeyId")
            .and_then(|k| k.as_str())
            .unwrap_or(key_id)
            .to_string();
        Ok(NewDataKey {
            plaintext,
            blob,
            arn,
        })
    }

    /// `Decrypt` of `blob` made under KMS key `arn` for the object at `object`.
    pub async fn decrypt(
        &self,
        arn: &str,
        blob: &[u8],
        object: &str,
    ) -> Result<Zeroizing<[u8; 32]>, KmsError> {
        let body = serde_json::json!({
            // Naming the key makes a blob of another key fail (IncorrectKeyException)
            // instead of being opened by whatever key made it.
            "KeyId": arn,
            "CiphertextBlob": base64::engine::general_purpose::STANDARD.encode(blob),
            "EncryptionContext": { CONTEXT_KEY: object },
        });
        let v = self.call("Decrypt", body).await?;
        plaintext_of(&v)
    }

    /// One signed call of any KMS `action` (tests use `CreateKey` and `DisableKey`);
    /// KMS's answer as JSON, or its error.
    pub async fn call(
        &self,
        action: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, KmsError> {
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|e| transport(format!("no AWS credentials: {e}")))?;
        let body = serde_json::to_vec(&body).map_err(|e| transport(e.to_string()))?;
        let mut req = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("{}/", self.endpoint.trim_end_matches('/')))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("TrentService.{action}"))
            .body(object_store::client::HttpRequestBody::from(body))
            .map_err(|e| transport(format!("bad KMS endpoint {}: {e}", self.endpoint)))?;
        AwsAuthorizer::new(&credential, "kms", &self.region)
            .try_authorize(&mut req, None)
            .map_err(|e| transport(format!("signing the request: {e}")))?;
        let resp = self
            .http
            .execute(req)
            .await
            .map_err(|e| transport(format!("{} at {}: {e}", action, self.endpoint)))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .bytes()
            .await
            .map_err(|e| transport(format!("reading the answer: {e}")))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::json!({ "message": String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>() })
        });
        if status.is_success() {
            return Ok(v);
        }
        Err(error_of(status.as_u16(), &v))
    }
}

/// KMS's error from its JSON answer: `__type` may carry a namespace
/// (`com.amazonaws.kms#DisabledException`).
pub fn error_of(status: u16, v: &serde_json::Value) -> KmsError {
    let code = v
        .get("__type")
        .and_then(|t| t.as_str())
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| format!("HTTP {status}"));
    let message = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_string();
    KmsError { code, message }
}

fn b64_field(v: &serde_json::Value, name: &str) -> Result<Vec<u8>, KmsError> {
    let s = v
        .get(name)
        .and_then(|s| s.as_str())
        .ok_or_else(|| transport(format!("the answer has no {name}")))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| transport(format!("the answer's {name} is not base64")))
}

fn plaintext_of(v: &serde_json::Value) -> Result<Zeroizing<[u8; 32]>, KmsError> {
    let raw = Zeroizing::new(b64_field(v, "Plaintext")?);
    let mut key = Zeroizing::new([0u8; 32]);
    if raw.len() != 32 {
        return Err(transport(format!(
            "the data key is {} bytes, not 32",
            raw.len()
        )));
    }
    key.copy_from_slice(&raw);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_read_with_or_without_a_namespace() {
        let v = serde_json::json!({"__type": "com.amazonaws.kms#DisabledException", "message": "arn:x is disabled."});
        assert_eq!(
            error_of(400, &v),
            KmsError {
                code: "DisabledException".into(),
                message: "arn:x is disabled.".into()
            }
        );
        let v = serde_json::json!({"__type": "AccessDeniedException", "Message": "no"});
        assert_eq!(error_of(400, &v).code, "AccessDeniedException");
        assert_eq!(error_of(503, &serde_json::json!({})).code, "HTTP 503");
    }
}
