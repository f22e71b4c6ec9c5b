// The tenant's AWS accounts (/v1/accounts): health and last success, and the link that creates
// each one's stack in AWS (CloudFormation's quick-create, its ExternalId filled in).
import { call } from "../api.js";
import { h, table, when } from "../ui.js";

export async function accountsPage(main) {
  main.replaceChildren(h("h1", {}, "Accounts"), h("p", { class: "loading" }, "Loading…"));
  const { items } = await call("/v1/accounts");
  const rows = items.map((a) =>
    h(
      "tr",
      { class: a.removed_at ? "removed" : null },
      h("td", {}, a.account_id),
      h("td", {}, a.removed_at ? h("span", {}, "removed ", when(a.removed_at)) : h("span", { class: a.healthy ? "ok" : "bad" }, a.healthy ? "healthy" : "unhealthy")),
      h("td", {}, a.health_reason || ""),
      h("td", {}, when(a.last_success_at)),
      h("td", {}, a.regions.join(", ")),
      h("td", {}, a.cloudtrail_bucket ? `s3://${a.cloudtrail_bucket}/${a.cloudtrail_prefix || ""}` : "—"),
      h("td", { class: "arn" }, a.role_arn),
      h("td", {}, when(a.created_at)),
      h("td", {}, a.onboarding_link ? h("a", { href: a.onboarding_link, target: "_blank", rel: "noopener" }, "Create its stack", h("span", { class: "visually-hidden" }, ` for account ${a.account_id}`)) : "—"),
    ),
  );
  main.replaceChildren(
    h("h1", {}, "Accounts"),
    items.length
      ? table("Connected AWS accounts", ["Account", "Health", "Reason", "Last success", "Regions", "CloudTrail", "Role", "Connected", "Onboarding"], rows)
      : h("p", { class: "empty" }, "No AWS account is connected yet."),
  );
}
