// The payment step (web/manage/payment.py): the card goes from this page to Stripe only.
// Stripe.js turns it into a payment method id, which the form posts to calsync; the server
// confirms the payment. A card that needs 3-D Secure comes back with data-secret set, and
// Stripe.js's confirmCardPayment asks the customer, then returns to data-return.
(function () {
  "use strict";
  var form = document.getElementById("pay");
  if (!form || typeof Stripe !== "function") {
    return;
  }
  var stripe = Stripe(form.dataset.key);
  var problem = document.getElementById("card-problem");
  var button = document.getElementById("pay-button");
  var show = function (text) {
    problem.textContent = text;
    problem.hidden = false;
    button.disabled = false;
  };

  if (form.dataset.secret) {
    // 3-D Secure: Stripe.js shows the bank's check, then calsync re-reads the payment.
    button.disabled = true;
    stripe.confirmCardPayment(form.dataset.secret).then(function () {
      window.location.assign(form.dataset["return"]);
    });
    return;
  }

  var card = stripe.elements().create("card");
  card.mount("#card");

  // Real Stripe.js answers createPaymentMethod with a pm_… id; localstripe's mock of Stripe.js
  // (tests and the demo) does not implement it, and its createToken gives a card_… id that
  // its server takes as a payment method instead.
  var paymentMethod = function () {
    return Promise.resolve(stripe.createPaymentMethod({ type: "card", card: card })).then(
      function (result) {
        if (result && (result.paymentMethod || result.error)) {
          return result.error ? { error: result.error } : { id: result.paymentMethod.id };
        }
        return stripe.createToken(card).then(function (tokenResult) {
          if (tokenResult.error) {
            return { error: tokenResult.error };
          }
          return { id: tokenResult.token.card.id };
        });
      }
    );
  };

  form.addEventListener("submit", function (event) {
    if (form.elements.payment_method.value) {
      return;
    }
    event.preventDefault();
    button.disabled = true;
    paymentMethod().then(
      function (result) {
        if (result.error) {
          show(result.error.message || "Check your card details and try again.");
          return;
        }
        form.elements.payment_method.value = result.id;
        form.submit();
      },
      function () {
        show("The payment service could not be reached; nothing was charged. Try again.");
      }
    );
  });
})();
