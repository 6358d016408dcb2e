// The consent page submits itself (as Logto's does); a file, not inline, for the page's CSP.
document.getElementById("consent").submit();
