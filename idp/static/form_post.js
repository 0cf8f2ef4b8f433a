// Submits the authorization response to the client (OAuth 2.0 Form Post Response Mode).
document.getElementById("form-post").submit();
