/* The verification page: reads a credential (file, drop or paste), asks the service to
   verify it (POST /v1/verify), and shows what it is, each check, the anchoring evidence and
   its status in plain words. The e-mail comparison hashes in this browser (WebCrypto) and
   sends nothing. Every value from the credential or the service is written as text. */
"use strict";

(function () {
  const CONFIG = window.LER_ANCHOR_PAGE || { service: "", explorer: null };
  const SERVICE = typeof CONFIG.service === "string" ? CONFIG.service.replace(/\/+$/, "") : "";
  const EXPLORER = typeof CONFIG.explorer === "string" ? CONFIG.explorer.replace(/\/+$/, "") : null;
  const MAX_BYTES = 1024 * 1024;

  const CHECK_WORDS = {
    format: "It is a well-formed credential",
    anchoring: "It was recorded in the public log",
    issuer: "The issuer's identity can be looked up",
    key: "It was signed with the issuer's key",
    proof: "It has not been altered since it was signed",
    validity: "It is within its dates",
    status: "It has not been revoked or suspended",
  };
  const VERDICT_WORDS = { valid: "Passed", invalid: "Failed", unknown: "Could not check" };

  const $ = (id) => document.getElementById(id);
  let current = null; // the credential shown

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function text(value) {
    return typeof value === "string" ? value : "";
  }

  function webLink(url, label) {
    if (typeof url !== "string" || !/^https?:\/\/[^\s"'<>]+$/.test(url)) return null;
    return el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, label || url);
  }

  function when(value) {
    if (typeof value !== "string" || !value) return null;
    const moment = new Date(value);
    if (Number.isNaN(moment.getTime())) return value;
    const format = new Intl.DateTimeFormat("en-GB", {
      dateStyle: "long", timeStyle: "short", timeZone: "UTC",
    });
    return `${format.format(moment)} UTC`;
  }

  function facts(rows) {
    const list = el("dl", { class: "facts" });
    for (const [term, value] of rows) {
      if (value === null || value === undefined || value === "") continue;
      list.append(el("dt", {}, term), el("dd", {}, value));
    }
    return list;
  }

  function showMessage(words) {
    const box = $("message");
    box.textContent = words;
    box.hidden = !words;
  }

  // ---- what the credential says ----------------------------------------------------------

  function subjects(credential) {
    const raw = credential.credentialSubject;
    return Array.isArray(raw) ? raw : raw && typeof raw === "object" ? [raw] : [];
  }

  function achievementsOf(credential, depth) {
    const found = [];
    for (const subject of subjects(credential)) {
      if (!subject || typeof subject !== "object") continue;
      if (subject.achievement && typeof subject.achievement === "object") {
        found.push(subject.achievement);
      }
      // CLR 2.0: the credentials it bundles carry the achievements
      if (depth === 0 && Array.isArray(subject.verifiableCredential)) {
        for (const inner of subject.verifiableCredential) {
          if (inner && typeof inner === "object") found.push(...achievementsOf(inner, 1));
        }
      }
    }
    return found;
  }

  function issuerOf(credential) {
    const issuer = credential.issuer;
    if (typeof issuer === "string") return { id: issuer, name: "" };
    if (issuer && typeof issuer === "object") return { id: text(issuer.id), name: text(issuer.name) };
    return { id: "", name: "" };
  }

  function alignmentTable(alignments) {
    const rows = alignments.filter((a) => a && typeof a === "object");
    if (!rows.length) return null;
    const body = el("tbody");
    for (const a of rows) {
      const name = text(a.targetName) || "(unnamed)";
      body.append(el("tr", {},
        el("td", {}, webLink(a.targetUrl, name) || name),
        el("td", { class: "mono" }, text(a.targetCode)),
        el("td", {}, text(a.targetFramework))));
    }
    return el("table", {},
      el("caption", {}, "Skills and occupations it is aligned to"),
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, "Skill or occupation"),
        el("th", { scope: "col" }, "Code"),
        el("th", { scope: "col" }, "Framework"))),
      body);
  }

  function showWhat(credential, report) {
    const box = $("what");
    box.replaceChildren();
    const issuer = issuerOf(credential);
    const registered = report && report.issuer ? report.issuer.registeredName : null;
    const types = Array.isArray(credential.type) ? credential.type.filter((t) => typeof t === "string") : [];
    const kind = types.find((t) => t !== "VerifiableCredential") || types[0] || "";
    const achievements = achievementsOf(credential, 0);
    if (!achievements.length && text(credential.name)) {
      box.append(el("h3", {}, text(credential.name)));
    }
    for (const a of achievements) {
      const criteria = a.criteria && typeof a.criteria === "object" ? text(a.criteria.narrative) : text(a.criteria);
      box.append(el("h3", {}, text(a.name) || "(an achievement with no name)"));
      box.append(facts([
        ["Description", text(a.description)],
        ["Criteria", criteria],
        ["Kind", text(a.achievementType)],
      ]));
      const table = alignmentTable(Array.isArray(a.alignment) ? a.alignment : []);
      if (table) box.append(table);
    }
    let issuerName = issuer.name ? `${issuer.name} (as the credential names it)` : "";
    if (registered) issuerName = `${registered} (registered with this service)`;
    else if (report && report.issuer && issuer.id) {
      issuerName = (issuerName ? issuerName + "; " : "") + "not registered with this service";
    }
    const validFrom = credential.validFrom || credential.issuanceDate;
    const validUntil = credential.validUntil || credential.expirationDate;
    box.append(facts([
      ["Type", kind],
      ["Issued by", issuerName],
      ["Issuer's identifier", issuer.id ? el("span", { class: "mono" }, issuer.id) : null],
      ["Issued on", when(validFrom)],
      ["Expires", validUntil ? when(validUntil) : "Does not expire"],
    ]));
  }

  // ---- the checks, the anchor and the status ---------------------------------------------

  const SUMMARY = {
    valid: ["This credential checks out",
      "It is genuine, unchanged, recorded in the public log, within its dates and not revoked or suspended."],
    invalid: ["Do not rely on this credential",
      "At least one check failed: see which below."],
    unknown: ["This credential could not be fully checked",
      "Nothing failed, but some checks could not be completed: see below. Try again later or ask the issuer."],
  };

  function showVerdict(result, reason, heading) {
    const [title, words] = SUMMARY[result] || SUMMARY.unknown;
    $("verdict").className = `verdict ${SUMMARY[result] ? result : "unknown"}`;
    $("verdict-title").textContent = heading || title;
    $("verdict-text").textContent = reason || words;
  }

  function showChecks(report) {
    const list = $("checks");
    list.replaceChildren();
    for (const check of report.checks || []) {
      const result = VERDICT_WORDS[check.result] ? check.result : "unknown";
      list.append(el("li", { "data-check": text(check.check), "data-result": result },
        el("span", { class: "what" }, CHECK_WORDS[check.check] || text(check.check)),
        el("span", { class: `badge ${result}` }, VERDICT_WORDS[result]),
        el("span", { class: "why" }, text(check.reason))));
    }
  }

  function showAnchor(report) {
    const box = $("anchor");
    box.replaceChildren();
    const check = (report.checks || []).find((c) => c.check === "anchoring");
    const d = check && check.details ? check.details : null;
    if (!d || !d.chain) {
      box.append(el("p", {}, check ? `No anchoring evidence: ${text(check.reason)}` : "No anchoring evidence."));
      return;
    }
    const tx = text(d.transaction);
    let txNode = tx ? el("span", { class: "mono" }, tx) : null;
    if (tx && EXPLORER) {
      txNode = webLink(`${EXPLORER}/tx/${encodeURIComponent(tx)}`, tx);
      if (txNode) txNode.classList.add("mono");
    }
    box.append(facts([
      ["Blockchain", text(d.chain)],
      ["Block", d.blockNumber !== undefined && d.blockNumber !== null ? String(d.blockNumber) : ""],
      ["Recorded at", when(d.blockTime)],
      ["Confirmations", d.confirmations !== undefined && d.confirmations !== null ? String(d.confirmations) : ""],
      ["Transaction", txNode],
      ["Log", text(d.logOrigin)],
      ["Position in the log", d.leafIndex !== undefined && d.treeSize !== undefined
        ? `entry ${d.leafIndex} of ${d.treeSize}` : ""],
    ]));
  }

  const OUTCOME_WORDS = {
    valid: "In force", revoked: "Revoked", suspended: "Suspended",
    message: "Has a status message", unknown: "Could not be checked",
  };

  function showStatus(report) {
    const box = $("status");
    box.replaceChildren();
    const check = (report.checks || []).find((c) => c.check === "status");
    const entries = check && check.details && Array.isArray(check.details.entries) ? check.details.entries : [];
    if (!entries.length) {
      box.append(el("p", {}, check ? text(check.reason) : "No status information."));
      return;
    }
    const body = el("tbody");
    for (const entry of entries) {
      const outcome = text(entry.outcome);
      const why = entry.error && typeof entry.error === "object" ? text(entry.error.detail) : text(entry.message);
      body.append(el("tr", { "data-purpose": text(entry.statusPurpose), "data-outcome": outcome },
        el("td", {}, text(entry.statusPurpose)),
        el("td", {}, el("strong", {}, OUTCOME_WORDS[outcome] || outcome)),
        el("td", {}, why)));
    }
    box.append(el("table", {},
      el("caption", {}, "Each status entry, as its issuer publishes it now"),
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, "Purpose"),
        el("th", { scope: "col" }, "Status"),
        el("th", { scope: "col" }, "Note"))),
      body));
  }

  // ---- "does this belong to the candidate?" ----------------------------------------------

  function emailIdentities(credential) {
    const found = [];
    for (const subject of subjects(credential)) {
      const raw = subject && subject.identifier;
      const items = Array.isArray(raw) ? raw : raw ? [raw] : [];
      for (const item of items) {
        if (item && item.type === "IdentityObject" && item.hashed === true &&
            item.identityType === "emailAddress" && typeof item.identityHash === "string") {
          found.push(item);
        }
      }
    }
    return found;
  }

  async function sha256Hex(value) {
    const bytes = new TextEncoder().encode(value);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // As the issuer hashed it: "sha256$" + hex SHA-256 of the address followed by the salt.
  async function matches(identity, address) {
    const salt = typeof identity.salt === "string" ? identity.salt : "";
    return `sha256$${await sha256Hex(address + salt)}` === identity.identityHash.toLowerCase();
  }

  async function compareEmail() {
    const out = $("email-result");
    out.className = "outcome";
    const address = $("email").value.trim();
    if (!current) return;
    const identities = emailIdentities(current);
    if (!identities.length) {
      out.textContent = "This credential does not name its holder by e-mail address, so it cannot be compared.";
      return;
    }
    if (!address) {
      out.textContent = "Type the candidate's e-mail address first.";
      return;
    }
    if (!(window.crypto && crypto.subtle)) {
      out.textContent = "This browser cannot compute the comparison here (it needs a secure https page).";
      return;
    }
    // The address as typed; if that does not match, the same in lower case (addresses are
    // nearly always issued in lower case, and people type capitals).
    const tries = [address];
    if (address.toLowerCase() !== address) tries.push(address.toLowerCase());
    for (const candidate of tries) {
      for (const identity of identities) {
        if (await matches(identity, candidate)) {
          out.className = "outcome valid";
          out.dataset.match = "yes";
          out.textContent = `Matches: this credential was issued to ${candidate}.`;
          return;
        }
      }
    }
    out.className = "outcome invalid";
    out.dataset.match = "no";
    out.textContent = "Does not match: this credential was not issued to that address (check the spelling).";
  }

  // ---- reading and checking --------------------------------------------------------------

  function reset() {
    showMessage("");
    $("result").hidden = true;
    $("email").value = "";
    $("email-result").textContent = "";
    $("email-result").className = "outcome";
    delete $("email-result").dataset.match;
    current = null;
  }

  async function check(raw) {
    reset();
    if (raw.length > MAX_BYTES) {
      showMessage("This text is longer than 1 MB: it is not a credential.");
      return;
    }
    let credential;
    try {
      credential = JSON.parse(raw);
    } catch (err) {
      showMessage("This is not a credential: the file is not JSON. Ask the candidate for the credential file (.json) they received.");
      return;
    }
    if (!credential || typeof credential !== "object" || Array.isArray(credential)) {
      showMessage("This is not a credential: it is JSON but not a credential document.");
      return;
    }
    const button = $("check-button");
    button.disabled = true;
    button.textContent = "Checking…";
    let report;
    try {
      const response = await fetch(`${SERVICE}/v1/verify`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ credential }),
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        const detail = body && typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`;
        showMessage(`The service could not check it: ${detail}.`);
        return;
      }
      report = body;
    } catch (err) {
      showMessage("The checking service did not answer. Check your connection and try again.");
      return;
    } finally {
      button.disabled = false;
      button.textContent = "Check this credential";
    }
    current = credential;
    showWhat(credential, report);
    const failed = (report.checks || []).filter((c) => c.result === report.result && c.result !== "valid");
    const which = failed.map((c) => `${CHECK_WORDS[c.check] || text(c.check)}: ${VERDICT_WORDS[c.result].toLowerCase()} (${text(c.reason)})`);
    const format = (report.checks || []).find((c) => c.check === "format");
    if (format && format.result === "invalid") {
      showVerdict("invalid", `It is not a well-formed credential: ${text(format.reason)}.`,
        "This is not a valid credential");
    } else {
      showVerdict(report.result, which.length ? which.join(". ") + "." : "");
    }
    showChecks(report);
    showAnchor(report);
    showStatus(report);
    const owner = emailIdentities(credential).length > 0;
    $("email").disabled = !owner;
    $("email-button").disabled = !owner;
    if (!owner) {
      $("email-result").textContent = "This credential does not name its holder by e-mail address.";
    }
    $("result").hidden = false;
    $("verdict-title").focus();
  }

  function readFile(file) {
    if (!file) return;
    if (file.size > MAX_BYTES) {
      reset();
      showMessage("This file is larger than 1 MB: it is not a credential.");
      return;
    }
    const reader = new FileReader();
    reader.onload = () => check(String(reader.result));
    reader.onerror = () => showMessage("The file could not be read.");
    reader.readAsText(file);
  }

  // ---- the auditor's view ----------------------------------------------------------------

  async function getJson(path) {
    const response = await fetch(`${SERVICE}${path}`, {
      headers: { Accept: "application/json" }, credentials: "omit", referrerPolicy: "no-referrer",
    });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  function simpleTable(caption, headers, rows) {
    const body = el("tbody");
    for (const row of rows) body.append(el("tr", {}, ...row.map((cell) => el("td", {}, cell))));
    return el("table", {}, el("caption", {}, caption),
      el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))), body);
  }

  async function loadAudit() {
    const box = $("audit-result");
    box.replaceChildren(el("p", {}, "Loading…"));
    try {
      const [log, checkpoint, anchors, versions] = await Promise.all([
        getJson("/v1/log"), getJson("/v1/checkpoint"),
        getJson("/v1/anchors?limit=20"), getJson("/v1/status-versions?limit=20"),
      ]);
      const parts = [];
      parts.push(el("h3", {}, "The log"));
      parts.push(facts([
        ["Origin", text(log.origin)],
        ["Size", `${checkpoint.treeSize} entries`],
        ["Anchored on", log.chain ? `${log.chain}, contract ${log.contract}` : "not yet known"],
        ["Checkpoint key", el("span", { class: "mono" }, text(log.verifierKey))],
        ["Latest checkpoint", checkpoint.signedAt ? when(new Date(checkpoint.signedAt).toISOString()) : ""],
        ["Latest root", el("span", { class: "mono" }, text(checkpoint.root))],
      ]));
      parts.push(el("h3", {}, "Anchors (newest first)"));
      const anchorRows = (anchors.anchors || []).map((a) => {
        const tx = text(a.transactionHash);
        const link = tx && EXPLORER ? webLink(`${EXPLORER}/tx/${encodeURIComponent(tx)}`, tx) : null;
        if (link) link.classList.add("mono");
        return [String(a.treeSize), text(a.state), a.blockNumber === null ? "" : String(a.blockNumber),
          when(a.blockTime) || "", link || el("span", { class: "mono" }, tx)];
      });
      parts.push(anchorRows.length
        ? simpleTable("Each anchor of a checkpoint root on the chain",
          ["Log size", "State", "Block", "Time", "Transaction"], anchorRows)
        : el("p", {}, "No anchors yet."));
      parts.push(el("h3", {}, "Status list versions"));
      const versionRows = (versions.versions || []).map((v) => [
        text(v.listId), String(v.version), el("span", { class: "mono" }, text(v.digest)),
        v.logIndex === null || v.logIndex === undefined ? "not yet logged" : `entry ${v.logIndex}`]);
      parts.push(versionRows.length
        ? simpleTable("Every published version of the status lists, recorded in the log",
          ["List", "Version", "Digest", "In the log"], versionRows)
        : el("p", {}, "No status lists published yet."));
      box.replaceChildren(...parts);
    } catch (err) {
      box.replaceChildren(el("p", { class: "message" }, `The service did not answer: ${err.message}`));
    }
  }

  // ---- wiring ----------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("file").addEventListener("change", (event) => readFile(event.target.files[0]));
    $("check-button").addEventListener("click", () => {
      const raw = $("paste").value;
      if (raw.trim()) check(raw);
      else if ($("file").files[0]) readFile($("file").files[0]);
      else showMessage("Choose a credential file or paste its text first.");
    });
    $("email-button").addEventListener("click", compareEmail);
    $("email").addEventListener("keydown", (event) => {
      if (event.key === "Enter") compareEmail();
    });
    const drop = $("drop");
    drop.addEventListener("dragover", (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      readFile(event.dataTransfer.files[0]);
    });
    $("audit-button").addEventListener("click", loadAudit);
    if (window.location.hash === "#audit") loadAudit();
    window.addEventListener("hashchange", () => {
      if (window.location.hash === "#audit") loadAudit();
    });
  });
})();
