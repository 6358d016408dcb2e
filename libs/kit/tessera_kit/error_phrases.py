"""Logto's English error messages, keyed by error code.

Texts are copied verbatim from Logto (repository ``logto-io/logto``), files
``packages/phrases/src/locales/en/errors/<namespace>.ts``, as they stood in the v1.5.0 era
(tag v1.5.0, 2023-06-06; the repository's phrase files before they were wrapped in
``Object.freeze``). Versions read, by file:

- commit 541a5a249d4101c72bc687cf2a46701cf73ee3ff (errors split into one file per namespace):
  entity, guard, log, oidc, password, role, scope, session, storage, verification-code
- commit 37714d153ccf812e88eacc7fb6b4a86ad610d628: auth, localization, request,
  sign-in-experiences, swagger, user
- commit 01ebedcbb8e3ee5b7ce81d71184a341b942248e3: connector (adds ``rate_limit_exceeded``)
- commit 2d8a2269703670e78f5d21b8549b592ae3e78d23: hook
- commit 0e8817f279e150b202b3ea7a66ffc1023917f476: domain
- resource: ``resource_identifier_in_use`` only; later versions also have
  ``cannot_delete_management_api`` and ``cannot_modify_management_api``, which v1.5.0 lacks
  (it lets you patch or delete the Management API resource).

Nested objects are flattened to dotted keys ("entity.not_exists_with_id"). i18next placeholders
are kept exactly as Logto writes them (``{{name}}``, and ``{{ identifier }}`` with its spaces).
Namespaces that only later Logto versions have (application, organization, subscription,
single sign-on, …) are left out.
"""


ERROR_PHRASES: dict[str, str] = {
    "auth.authorization_header_missing": "Authorization header is missing.",
    "auth.authorization_token_type_not_supported": "Authorization type is not supported.",
    "auth.expected_role_not_found": (
        "Expected role not found. Please check your user roles and permissions."
    ),
    "auth.forbidden": "Forbidden. Please check your user roles and permissions.",
    "auth.jwt_sub_missing": "Missing `sub` in JWT.",
    "auth.require_re_authentication": (
        "Re-authentication is required to perform a protected action."
    ),
    "auth.unauthorized": "Unauthorized. Please check credentials and its scope.",
    "connector.authorization_failed": "The user's authorization process is unsuccessful.",
    "connector.can_not_modify_target": "The connector 'target' can not be modified.",
    "connector.cannot_overwrite_metadata_for_non_standard_connector": (
        "This connector's 'metadata' cannot be overwritten."
    ),
    "connector.db_connector_type_mismatch": (
        "There is a connector in the DB that does not match the type."
    ),
    "connector.general": "Error occurred in connector: {{errorDescription}}",
    "connector.insufficient_request_parameters": "The request might miss some input parameters.",
    "connector.invalid_auth_code": "The connector's auth code is invalid.",
    "connector.invalid_config": "The connector's config is invalid.",
    "connector.invalid_config_guard": "The connector's config guard is invalid.",
    "connector.invalid_metadata": "The connector's metadata is invalid.",
    "connector.invalid_request_parameters": "The request is with wrong input parameter(s).",
    "connector.invalid_response": "The connector's response is invalid.",
    "connector.invalid_type_for_syncing_profile": (
        "You can only sync user profile with social connectors."
    ),
    "connector.more_than_one_connector_factory": (
        "Found multiple connector factories (with id {{connectorIds}}), you may uninstall "
        "unnecessary ones."
    ),
    "connector.more_than_one_email": "The number of Email connectors is larger then 1.",
    "connector.more_than_one_sms": "The number of SMS connectors is larger then 1.",
    "connector.multiple_instances_not_supported": (
        "Can not create multiple instance with picked standard connector."
    ),
    "connector.multiple_target_with_same_platform": (
        "You can not have multiple social connectors that have same target and platform."
    ),
    "connector.not_enabled": "The connector is not enabled.",
    "connector.not_found": "Cannot find any available connector for type: {{type}}.",
    "connector.not_found_with_connector_id": (
        "Can not find connector with given standard connector id."
    ),
    "connector.not_implemented": "{{method}}: has not been implemented yet.",
    "connector.rate_limit_exceeded": "Trigger rate limit. Please try again later.",
    "connector.should_specify_target": "You should specify 'target'.",
    "connector.social_auth_code_invalid": (
        "Unable to get access token, please check authorization code."
    ),
    "connector.social_invalid_access_token": "The connector's access token is invalid.",
    "connector.social_invalid_id_token": "The connector's id token is invalid.",
    "connector.template_not_found": "Unable to find correct template in connector config.",
    "connector.unexpected_type": "The connector's type is unexpected.",
    "domain.cloudflare_data_missing": "cloudflare_data is missing, please check.",
    "domain.cloudflare_response_error": "Got unexpected response from Cloudflare.",
    "domain.cloudflare_unknown_error": "Got unknown error when requesting Cloudflare API",
    "domain.hostname_already_exists": "This domain already exists in our server.",
    "domain.limit_to_one_domain": "You can only have one custom domain.",
    "domain.not_configured": "Domain hostname provider is not configured.",
    "entity.create_failed": "Failed to create {{name}}.",
    "entity.not_exists": "The {{name}} does not exist.",
    "entity.not_exists_with_id": "The {{name}} with ID `{{id}}` does not exist.",
    "entity.not_found": "The resource does not exist.",
    "guard.can_not_get_tenant_id": "Unable to get tenant id from request.",
    "guard.file_size_exceeded": "File size exceeded.",
    "guard.invalid_input": "The request {{type}} is invalid.",
    "guard.invalid_pagination": "The request pagination value is invalid.",
    "guard.mime_type_not_allowed": "MIME type is not allowed.",
    "hook.missing_events": "You need to provide at least one event.",
    "hook.send_test_payload_failed": "Failed to send test payload: {{message}}",
    # Tessera's own (not in Logto 1.6).
    "hook.delivery_in_flight": "The delivery is being attempted right now; try again when it is done.",
    "localization.cannot_delete_default_language": (
        "{{languageTag}} is set as your default language and can’t be deleted."
    ),
    "localization.invalid_translation_structure": (
        "Invalid data schemas. Please check your input and try again."
    ),
    "log.invalid_type": "The log type is invalid.",
    "oidc.aborted": "The end-user aborted interaction.",
    "oidc.access_denied": "Access denied.",
    "oidc.insufficient_scope": "Access token missing requested scope {{scopes}}.",
    "oidc.invalid_client_metadata": "Invalid client metadata provided.",
    "oidc.invalid_grant": "Grant request is invalid.",
    "oidc.invalid_redirect_uri": (
        "`redirect_uri` did not match any of the client's registered `redirect_uris`."
    ),
    "oidc.invalid_request": "Request is invalid.",
    "oidc.invalid_scope": "Scope {{scope}} is not supported.",
    "oidc.invalid_scope_plural": "Scope {{scopes}} are not supported.",
    "oidc.invalid_target": "Invalid resource indicator.",
    "oidc.invalid_token": "Invalid token provided.",
    "oidc.provider_error": "OIDC Internal Error: {{message}}.",
    "oidc.unsupported_grant_type": "Unsupported `grant_type` requested.",
    "oidc.unsupported_response_mode": "Unsupported `response_mode` requested.",
    "oidc.unsupported_response_type": "Unsupported `response_type` requested.",
    "password.pepper_not_found": "Password pepper not found. Please check your core envs.",
    "password.unsupported_encryption_method": "The encryption method {{name}} is not supported.",
    "request.general": "Request error occurred.",
    "request.invalid_input": "Input is invalid. {{details}}",
    "resource.resource_identifier_in_use": "The API identifier {{indicator}} is already in use",
    "role.default_role_missing": (
        "Some of the default roleNames does not exist in database, please ensure to create roles "
        "first"
    ),
    "role.internal_role_violation": (
        "You may be trying to update or delete an internal role which is forbidden by Logto. If "
        "you are creating a new role, try another name that does not start with \"#internal:\"."
    ),
    "role.name_in_use": "This role name {{name}} is already in use",
    "role.scope_exists": "The scope id {{scopeId}} has already been added to this role",
    "role.user_exists": "The user id {{userId}} is already been added to this role",
    "scope.name_exists": "The scope name {{name}} is already in use",
    "scope.name_with_space": "The name of the scope cannot contain any spaces.",
    "session.connector_id_mismatch": "The connectorId is mismatched with session record.",
    "session.connector_session_not_found": (
        "Connector session not found. Please go back and sign in again."
    ),
    "session.connector_validation_session_not_found": (
        "The connector session for token validation is not found."
    ),
    "session.forgot_password_not_enabled": "Forgot password is not enabled.",
    "session.identifier_not_found": "User identifier not found. Please go back and sign in again.",
    "session.insufficient_info": "Insufficient sign-in info.",
    "session.interaction_not_found": (
        "Interaction session not found. Please go back and start the session again."
    ),
    "session.invalid_connector_id": "Unable to find available connector with id {{connectorId}}.",
    "session.invalid_credentials": "Incorrect account or password. Please check your input.",
    "session.invalid_sign_in_method": "Current sign-in method is not available.",
    "session.not_found": "Session not found. Please go back and sign in again.",
    "session.unauthorized": "Please sign in first.",
    "session.unsupported_prompt_name": "Unsupported prompt name.",
    "session.verification_expired": (
        "The connection has timed out. Verify again to ensure your account safety."
    ),
    "session.verification_failed": (
        "The verification was not successful. Restart the verification flow and try again."
    ),
    "session.verification_session_not_found": (
        "The verification was not successful. Restart the verification flow and try again."
    ),
    "sign_in_experiences.at_least_one_authentication_factor": (
        "You have to select at least one authentication factor."
    ),
    "sign_in_experiences.code_sign_in_must_be_enabled": (
        "Verification code sign in must be enabled when set a password is not required in sign up."
    ),
    "sign_in_experiences.empty_content_url_of_terms_of_use": (
        "Empty \"Terms of use\" content URL. Please add the content URL if \"Terms of use\" is "
        "enabled."
    ),
    "sign_in_experiences.empty_social_connectors": (
        "Empty social connectors. Please add enabled social connectors when the social sign-in "
        "method is enabled."
    ),
    "sign_in_experiences.enabled_connector_not_found": "Enabled {{type}} connector not found.",
    "sign_in_experiences.miss_sign_up_identifier_in_sign_in": (
        "Sign in methods must contain the sign up identifier."
    ),
    "sign_in_experiences.not_one_and_only_one_primary_sign_in_method": (
        "There must be one and only one primary sign-in method. Please check your input."
    ),
    "sign_in_experiences.password_sign_in_must_be_enabled": (
        "Password sign in must be enabled when set a password is required in sign up."
    ),
    "sign_in_experiences.passwordless_requires_verify": (
        "Must enable verify for email/phone sign up identifier."
    ),
    "sign_in_experiences.unsupported_default_language": (
        "This language - {{language}} is not supported at the moment."
    ),
    "sign_in_experiences.username_requires_password": (
        "Must enable set a password for username sign up identifier."
    ),
    "storage.missing_parameter": "Missing parameter {{parameter}} for storage provider.",
    "storage.not_configured": "Storage provider is not configured.",
    "storage.upload_error": "Failed to upload file to the storage provider.",
    "swagger.invalid_zod_type": "Invalid Zod type. Please check route guard config.",
    "swagger.not_supported_zod_type_for_params": (
        "Not supported Zod type for the parameters. Please check route guard config."
    ),
    "user.cannot_delete_self": "You cannot delete yourself.",
    "user.email_already_in_use": "This email is associated with an existing account.",
    "user.email_exists_in_profile": "Your profile has already associated with an email address.",
    "user.email_not_exist": "The email address has not been registered yet.",
    "user.email_or_phone_required_in_profile": (
        "You need to add an email address or phone number before signing-in."
    ),
    "user.email_required_in_profile": "You need to add an email address before signing-in.",
    "user.identity_already_in_use": (
        "The social account has been associated with an existing account."
    ),
    "user.identity_not_exist": "The social account has not been registered yet.",
    "user.invalid_email": "Invalid email address.",
    "user.invalid_phone": "Invalid phone number.",
    "user.missing_profile": "You need to provide additional info before signing-in.",
    "user.new_password_required_in_profile": "You need to set a new password.",
    "user.password_exists_in_profile": "Password already exists in your profile.",
    "user.password_required_in_profile": "You need to set a password before signing-in.",
    "user.phone_already_in_use": "This phone number is associated with an existing account.",
    "user.phone_exists_in_profile": "Your profile has already associated with a phone number.",
    "user.phone_not_exist": "The phone number has not been registered yet.",
    "user.phone_required_in_profile": "You need to add a phone number before signing-in.",
    "user.role_exists": "The role id {{roleId}} is already been added to this user",
    "user.same_password": "New password cannot be the same as your old password.",
    "user.sign_in_method_not_enabled": "This sign-in method is not enabled.",
    "user.sign_up_method_not_enabled": "This sign-up method is not enabled.",
    "user.social_account_exists_in_profile": "You have already associated this social account.",
    "user.suspended": "This account is suspended.",
    "user.user_not_exist": "User with {{ identifier }} does not exist.",
    "user.username_already_in_use": "This username is already in use.",
    "user.username_exists_in_profile": "Username already exists in your profile.",
    "user.username_required_in_profile": "You need to set a username before signing-in.",
    "verification_code.code_mismatch": "Invalid verification code.",
    "verification_code.email_mismatch": "Email mismatch. Please request a new verification code.",
    "verification_code.exceed_max_try": (
        "Verification code retries limitation exceeded. Please request a new verification code."
    ),
    "verification_code.expired": (
        "Verification code has expired. Please request a new verification code."
    ),
    "verification_code.not_found": (
        "Verification code not found. Please send verification code first."
    ),
    "verification_code.phone_email_empty": "Both phone and email are empty.",
    "verification_code.phone_mismatch": "Phone mismatch. Please request a new verification code.",
}

# --- Tessera's own codes ---------------------------------------------------------------
# Not Logto codes: used where Tessera's split into services adds a failure Logto cannot have.
# (The Logto codes Tessera leans on most, guard.invalid_pagination, entity.not_found,
# entity.not_exists, entity.not_exists_with_id, entity.create_failed, request.general and
# request.invalid_input, are all in the table above with Logto's own texts.)
ERROR_PHRASES.update(
    {
        "service.unavailable": "The {{service}} service is unavailable. Please try again later.",
    }
)

# rbac: the protected Management API (codes and texts of later Logto versions, where they
# have them), and the machine-to-machine role routes Tessera takes from later Logto versions.
ERROR_PHRASES.update(
    {
        "resource.cannot_delete_management_api": "Cannot delete Logto management API.",
        "resource.cannot_modify_management_api": (
            "Cannot modify Logto management API or its scopes: the Management API depends on them."
        ),
        "role.application_exists": (
            "The application id {{applicationId}} is already been added to this role"
        ),
        "application.invalid_type": "Only machine to machine applications can have associated roles.",
        "application.role_exists": "The role id {{roleId}} is already been added to this application.",
        "application.invalid_role_type": (
            "Can not assign user type role to machine to machine application."
        ),
        "user.invalid_role_type": "Invalid role type, can not assign machine-to-machine role to user.",
    }
)
