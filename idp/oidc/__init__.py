"""The OpenID Provider: Authlib's grants and endpoints (``server``), the authorization
endpoint's decisions as named prompt checks (``authorization``, ``prompts``), interactions
parked while the member is at the hosted pages (``interactions``) and what those pages may
tell the protocol (``interaction_api``), clients, claims and the stored codes and tokens."""
