// The manage page's small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // 1. Show free times in the zone this device is set to, unless the customer chose one.
  var zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (e) {
    zone = "";
  }
  document.querySelectorAll("form[data-detect-zone] input[name=tz]").forEach(function (input) {
    if (!input.value && zone) {
      input.value = zone;
    }
  });

  // 1b. The booking page's zone menu, when the address named no zone (the server then showed
  //     the owner's): choose this device's zone, adding it when the menu lacks it. The
  //     customer can still change it; without a script the owner's zone stays chosen.
  document.querySelectorAll("select[data-detect-zone]").forEach(function (select) {
    if (!zone || select.value === zone) {
      return;
    }
    var found = Array.prototype.some.call(select.options, function (option) {
      return option.value === zone;
    });
    if (!found) {
      var option = document.createElement("option");
      option.value = zone;
      option.textContent = zone.replace(/_/g, " ");
      select.appendChild(option);
    }
    select.value = zone;
  });

  // 2. A time chosen for one session is not offered to the others (nor times overlapping it).
  var times = document.getElementById("times");
  if (times) {
    var groups = Array.prototype.slice.call(times.querySelectorAll("fieldset[data-session]"));
    var radios = function (group) {
      return Array.prototype.slice.call(group.querySelectorAll("input[type=radio]"));
    };
    var refresh = function () {
      var picks = [];
      groups.forEach(function (group) {
        var checked = group.querySelector("input[type=radio]:checked");
        if (checked) {
          picks.push({ group: group, start: +checked.dataset.start, end: +checked.dataset.end });
        }
      });
      groups.forEach(function (group) {
        radios(group).forEach(function (radio) {
          var start = +radio.dataset.start;
          var end = +radio.dataset.end;
          var clash = picks.some(function (pick) {
            return pick.group !== group && start < pick.end && pick.start < end;
          });
          radio.disabled = clash && !radio.checked;
        });
      });
    };
    times.addEventListener("change", refresh);
    refresh();
  }

  // 3. A second press on a change button would be harmless (the form's idempotency key) but
  //    pointless: ignore it until the next page.
  document.querySelectorAll("form[method=post]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent) {
        event.preventDefault();
        return;
      }
      form.dataset.sent = "1";
      form.querySelectorAll("button[type=submit]").forEach(function (button) {
        button.setAttribute("aria-disabled", "true");
      });
    });
  });
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[method=post]").forEach(function (form) {
      delete form.dataset.sent;
      form.querySelectorAll("button[type=submit]").forEach(function (button) {
        button.removeAttribute("aria-disabled");
      });
    });
  });

  // 4. Take keyboard and screen reader users to the first problem on the page.
  var problem = document.querySelector("[aria-invalid=true], .problem, .notice[role=alert]");
  if (problem && !document.querySelector("[autofocus]")) {
    if (!problem.hasAttribute("tabindex") && !/^(INPUT|TEXTAREA|SELECT)$/.test(problem.tagName)) {
      problem.setAttribute("tabindex", "-1");
    }
    problem.focus();
  }
})();
